// lorart check-kernels: compiles every generated CUDA kernel of a plan with
// NVRTC for the given architectures (no GPU needed), through the kernel cache.
#include <memory>

#include "lorart/cli/commands.h"
#include "lorart/cuda/nvrtc.h"
#include "lorart/plan/plan.h"

namespace lorart {
namespace cli {

Command AddCheckKernelsCommand(CLI::App& root, std::ostream& out) {
  struct Options {
    std::string plan, cache;
    std::vector<std::string> archs = {"sm_80", "sm_90a"};
    bool resources = false, no_spills = false;
  };
  auto o = std::make_shared<Options>();
  Command c;
  c.app = root.add_subcommand("check-kernels",
                              "Compile a plan's generated CUDA kernels with NVRTC (no GPU needed)");
  c.app->add_option("plan", o->plan, "train.bin compiled with --target cuda")->required();
  c.app->add_option("--arch", o->archs, "GPU architectures");
  c.app->add_option("--kernel-cache", o->cache,
                    "Compiled-kernel cache (default: $XDG_CACHE_HOME/lorac)");
  c.app->add_flag("--resources", o->resources,
                  "Print ptxas's registers, stack and spills per kernel (compiles without the cache)");
  c.app->add_flag("--no-spills", o->no_spills,
                  "Fail when a kernel spills registers (implies --resources; a stack frame alone, as double "
                  "sincos's slow path needs, is reported but allowed)");
  c.run = [o, &out]() -> Status {
    if (o->no_spills) o->resources = true;
    Plan plan;
    LORA_RETURN_IF_ERROR(LoadPlan(o->plan, &plan));
    LORA_ASSIGN_OR_RETURN(const cuda::Nvrtc* nvrtc, cuda::Nvrtc::Get());
    std::string cache = cuda::KernelCacheDir(o->cache);
    std::vector<std::string> options = cuda::DefaultNvrtcOptions();
    int64_t compiled = 0, hits = 0, without = 0;
    for (uint32_t k = 0; k < plan.num_kernels(); ++k) {
      const schema::Kernel& kernel = plan.kernel(k);
      if (!kernel.cuda_source()) {
        ++without;
        continue;
      }
      std::string name = kernel.entry() ? kernel.entry()->str() : kernel.kind()->str();
      for (const std::string& arch : o->archs) {
        std::string cubin;
        bool hit = false;
        if (o->resources) {
          std::vector<std::string> verbose = options;
          verbose.push_back("--ptxas-options=-v");
          std::string log;
          LORA_RETURN_IF_ERROR(nvrtc->CompileToCubin(kernel.cuda_source()->str(), name, arch,
                                                     verbose, &cubin, &log));
          std::vector<std::string> entries = {name};
          if (kernel.cuda_next())
            for (const schema::CudaStep* st : *kernel.cuda_next()) entries.push_back(st->entry()->str());
          for (const std::string& e : entries) {
            cuda::KernelResources r;
            LORA_RETURN_IF_ERROR(cuda::ParsePtxasReport(log, e, &r));
            out << e << " " << arch << ": " << r.registers << " registers, " << r.stack_bytes
                << " bytes stack, " << r.spill_store_bytes << " bytes spill stores, "
                << r.spill_load_bytes << " bytes spill loads\n";
            if (o->no_spills && (r.spill_store_bytes || r.spill_load_bytes))
              return InvalidArgumentError(StrFormat(
                  "kernel %s spills registers on %s: %lld bytes spill stores, %lld bytes spill "
                  "loads",
                  e.c_str(), arch.c_str(), static_cast<long long>(r.spill_store_bytes),
                  static_cast<long long>(r.spill_load_bytes)));
          }
        } else {
          LORA_RETURN_IF_ERROR(cuda::CompileCached(*nvrtc, cache, kernel.cuda_source()->str(),
                                                   name, arch, options, &cubin, &hit));
        }
        if (cubin.empty()) return InternalError("kernel " + name + ": empty CUBIN");
        ++compiled;
        hits += hit;
      }
    }
    out << "compiled " << compiled << " kernel builds (" << hits << " from the cache in " << cache
        << ") with NVRTC " << nvrtc->major() << "." << nvrtc->minor() << " for";
    for (const std::string& a : o->archs) out << " " << a;
    out << "; " << without << " kernels have no CUDA source yet\n";
    return OkStatus();
  };
  return c;
}

}  // namespace cli
}  // namespace lorart
