#include "sim_runner.h"

#include <dlfcn.h>
#include <unistd.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>

namespace lora_sim_test {
namespace {

std::string Shell(const std::string& cmd, int* rc) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) {
    *rc = -1;
    return "popen failed";
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  *rc = pclose(p);
  return out;
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

}  // namespace

std::string SimAvailable() {
  if (!Exists(LORA_SIM_CUDA_INCLUDE "/cuda_bf16.h"))
    return "no CUDA headers at " LORA_SIM_CUDA_INCLUDE;
  if (!Exists(LORA_SIM_CXX)) return "no host compiler at " LORA_SIM_CXX;
  return "";
}

SimKernel::~SimKernel() {
  if (handle_) dlclose(handle_);
}

// UBSan's alignment and bounds checks, fatal: a load through a misaligned
// typed pointer faults on a GPU, and an index past a fixed-size array (a
// fragment, a shared tile) reads another variable there.
const char kFlags[] =
    " -std=c++17 -O1 -g0 -fPIC -fvisibility=hidden -w -DLORA_CUDA_SIM=1"
    " -fsanitize=alignment,bounds -fno-sanitize-recover=all -I" LORA_SIM_CUDA_INCLUDE;

// The simulator header with the CUDA headers it includes, precompiled once
// per work directory (most of a kernel's compile time otherwise).
// The work directory's copy of the header is named by a hash of its text,
// so a changed simulator never meets a stale precompiled copy.
std::string PchHeader(const std::string& work_dir) {
  std::ifstream in(LORA_SIM_HEADER_DIR "/lora_cuda_sim.h");
  std::stringstream text;
  text << in.rdbuf();
  return work_dir + "/lora_cuda_sim_" + std::to_string(std::hash<std::string>{}(text.str())) + ".h";
}

// A name no other process or thread uses at the same time, for files
// renamed into place (several tests may share a work directory).
std::string TmpSuffix() {
  static std::atomic<unsigned> counter{0};
  return ".tmp" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

std::string EnsurePch(const std::string& work_dir) {
  std::string h = PchHeader(work_dir);
  if (Exists(h + ".gch")) return "";
  int rc = 0;
  std::string t = h + TmpSuffix();
  std::string log = Shell("cp '" LORA_SIM_HEADER_DIR "/lora_cuda_sim.h' '" + t + ".h' && " +
                              std::string(LORA_SIM_CXX) + kFlags + " -x c++-header '" + t +
                              ".h' -o '" + t + ".gch' && mv '" + t + ".h' '" + h +
                              "' && mv '" + t + ".gch' '" + h + ".gch'",
                          &rc);
  return rc == 0 ? "" : "precompiling lora_cuda_sim.h failed:\n" + log;
}


std::string BuildSimObject(const std::string& source, const std::vector<std::string>& entries,
                           const std::string& work_dir, std::string* so_path) {
  int rc = 0;
  Shell("mkdir -p '" + work_dir + "'", &rc);
  if (std::string err = EnsurePch(work_dir); !err.empty()) return err;
  // Objects are cached by source, entries and header: plans share most kernels.
  const std::string header = PchHeader(work_dir);
  std::string key = source + header;
  for (const std::string& e : entries) key += "\n" + e;
  std::string base = work_dir + "/" + (entries.empty() ? "none" : entries[0]) + "_" +
                     std::to_string(std::hash<std::string>{}(key));
  *so_path = base + ".so";
  if (Exists(*so_path)) return "";
  std::string t = base + TmpSuffix();
  {
    std::ofstream f(t + ".cc");
    f << source << "\n";
    // Per entry E: lora_sim_arity_E() and lora_sim_launch_E(grid, block,
    // dynamic shared bytes, argument values, count) -> "" or the error.
    for (const std::string& e : entries)
      f << "extern \"C\" __attribute__((visibility(\"default\"))) size_t lora_sim_arity_" << e
        << "() { return lora_sim::Arity(&" << e << "); }\n"
        << "extern \"C\" __attribute__((visibility(\"default\"))) const char* lora_sim_launch_"
        << e << "(\n"
        << "    const unsigned* g, const unsigned* b, size_t smem, void** args, size_t nargs) {\n"
        << "  static std::string err;\n"
        << "  if (nargs != lora_sim::Arity(&" << e << ")) {\n"
        << "    err = \"kernel " << e << " takes \" + std::to_string(lora_sim::Arity(&" << e
        << ")) + \" arguments, got \" + std::to_string(nargs);\n"
        << "    return err.c_str();\n  }\n"
        << "  err = lora_sim::Launch({g[0], g[1], g[2]}, {b[0], b[1], b[2]}, smem,\n"
        << "                         [&] { lora_sim::Call(&" << e << ", args); });\n"
        << "  return err.c_str();\n}\n";
  }
  std::string cmd = std::string(LORA_SIM_CXX) + kFlags + " -shared -include '" + header + "' '" +
                    t + ".cc' -o '" + t + ".so' && mv '" + t + ".so' '" + *so_path + "'";
  std::string log = Shell(cmd, &rc);
  std::remove((t + ".cc").c_str());
  if (rc != 0) return "host compile of " + (entries.empty() ? "?" : entries[0]) + " failed:\n" + log;
  return "";
}

std::string SimKernel::Compile(const std::string& source, const std::string& entry,
                               const std::string& work_dir) {
  std::string so;
  if (std::string err = BuildSimObject(source, {entry}, work_dir, &so); !err.empty()) return err;
  return Open(so, entry);
}

std::string SimKernel::Open(const std::string& so, const std::string& entry) {
  handle_ = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle_) return std::string("dlopen: ") + dlerror();
  launch_ = reinterpret_cast<LaunchFn>(dlsym(handle_, ("lora_sim_launch_" + entry).c_str()));
  if (!launch_) return "no lora_sim_launch_" + entry + " in " + so;
  return "";
}

std::string SimKernel::Launch(std::array<unsigned, 3> grid, std::array<unsigned, 3> block,
                              size_t shared_bytes, const std::vector<void*>& args) const {
  if (!launch_) return "not compiled";
  std::vector<void*> a = args;
  const char* err = launch_(grid.data(), block.data(), shared_bytes, a.data(), a.size());
  return err ? err : "";
}

}  // namespace lora_sim_test
