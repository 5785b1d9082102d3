#include "lorart/cuda/executor.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "lorart/base/strings.h"
#include "lorart/cpu/kernel.h"
#include "lorart/cuda/nvrtc.h"
#include "lorart/dist/collective.h"

namespace lorart::cuda {

namespace {

constexpr uint64_t kAlign = 256;  // cuMemAlloc's alignment; every tensor starts on it
constexpr unsigned kDefaultSharedLimit = 48 * 1024;

uint64_t RoundUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

Dim3 ToDim3(const schema::Dim3* d) {
  Dim3 r;
  if (d) r = {d->x(), d->y(), d->z()};
  return r;
}

std::string KernelLabel(const Plan& plan, uint32_t k) {
  const schema::Kernel& kernel = plan.kernel(k);
  return StrFormat("kernel %u (%s, %s)", k, kernel.name() ? kernel.name()->c_str() : "?",
                   kernel.kind()->c_str());
}

// The collectives of data-parallel plans: run on the host through NCCL, no
// CUDA source.
bool IsHostCollective(const schema::Kernel& k) {
  const std::string kind = k.kind()->str();
  return kind == "grad_all_reduce_start" || kind == "grad_all_reduce_wait" ||
         kind == "all_reduce_sum";
}

// Device kernels that some program launches, in index order.
std::vector<bool> LaunchedKernels(const Plan& plan) {
  std::vector<bool> used(plan.num_kernels(), false);
  for (uint32_t p = 0; p < plan.num_programs(); ++p)
    if (const auto* ls = plan.program(p).launches())
      for (const schema::Launch* l : *ls)
        if (!IsHostCollective(plan.kernel(l->kernel()))) used[l->kernel()] = true;
  return used;
}

}  // namespace

std::vector<std::string> KernelEntries(const schema::Kernel& kernel) {
  std::vector<std::string> entries;
  if (kernel.entry()) entries.push_back(kernel.entry()->str());
  if (kernel.cuda_next())
    for (const schema::CudaStep* s : *kernel.cuda_next()) entries.push_back(s->entry()->str());
  return entries;
}

Status CheckPlanHasCudaKernels(const Plan& plan) {
  std::vector<bool> used = LaunchedKernels(plan);
  for (uint32_t k = 0; k < plan.num_kernels(); ++k) {
    if (!used[k]) continue;
    const schema::Kernel& kernel = plan.kernel(k);
    if (!kernel.cuda_source() || !kernel.entry())
      return InvalidArgumentError(StrFormat(
          "%s: %s has no CUDA source (compile the plan with `lorac compile --target cuda`, "
          "which warns about any kernel that no CUDA template covers)",
          plan.path().c_str(), KernelLabel(plan, k).c_str()));
  }
  return OkStatus();
}

Status Executor::Create(const Plan& plan, const ExecutorOptions& options,
                        std::unique_ptr<Executor>* out) {
  LORA_RETURN_IF_ERROR(CheckPlanHasCudaKernels(plan));
  std::unique_ptr<Executor> e(new Executor());
  e->plan_ = &plan;
  LORA_ASSIGN_OR_RETURN(e->device_, Device::Open(options.device));
  LORA_RETURN_IF_ERROR(e->Prepare(options), "while preparing %s for %s", plan.path().c_str(),
                       e->device_->name().c_str());
  *out = std::move(e);
  return OkStatus();
}

Executor::~Executor() {
  if (!device_) return;
  if (nccl_) {
    // A job that failed (another rank ended it, or this rank's sums cannot
    // finish) must not wait for sums whose peers are gone: ncclCommAbort
    // ends them, and ~Nccl then destroys nothing.
    bool failed = collective_ && !collective_->PeerFailure().ok();
    if (!failed && !in_flight_.empty()) failed = !FinishSums("the end of the run").ok();
    if (failed) nccl_->Abort();
  }
  if (comm_) (void)device_->Synchronize();  // NCCL's sums may still use the buffers
  device_->Free(arena_);
  device_->Free(persistent_);
  device_->Free(keys_);
  for (Event e : events_) device_->DestroyEvent(e);
  if (comm_) {
    for (const auto& [index, bucket] : buckets_) device_->DestroyEvent(bucket.done);
    device_->DestroyEvent(compute_ready_);
    device_->DestroyEvent(sum_done_);
    device_->DestroyStream(comm_);
  }
}

Status Executor::Prepare(const ExecutorOptions& options) {
  if (const char* env = std::getenv("LORART_CUDA_CHECK_LAUNCHES"); env && *env && *env != '0')
    check_each_launch_ = true;
  const Plan& plan = *plan_;
  // Device memory: the planned arena, and every persistent tensor in one
  // block, each at a 256-byte boundary.
  uint32_t n = plan.num_tensors();
  tensor_ptr_.assign(n, 0);
  std::vector<uint64_t> persistent_offset(n, 0);
  for (uint32_t id = 0; id < n; ++id) {
    if (plan.tensor(id).storage() == schema::Storage::Arena) continue;
    persistent_offset[id] = persistent_bytes_;
    persistent_bytes_ = RoundUp(persistent_bytes_ + plan.tensor_bytes(id), kAlign);
  }
  arena_bytes_ = RoundUp(plan.arena().size(), kAlign);
  // Checked before compiling: a plan that cannot fit fails in a second, not
  // after minutes of NVRTC.
  size_t free_bytes = 0, total_bytes = 0;
  LORA_RETURN_IF_ERROR(device_->MemoryInfo(&free_bytes, &total_bytes));
  uint64_t need = arena_bytes_ + persistent_bytes_;
  if (need > free_bytes)
    return UnavailableError(StrFormat(
        "the plan needs %s of device memory (arena %s, persistent tensors %s); %s has %s free: "
        "compile with a smaller --micro-batch/--seq-len, --remat, or --quantize-base nf4",
        HumanBytes(need).c_str(), HumanBytes(arena_bytes_).c_str(),
        HumanBytes(persistent_bytes_).c_str(), device_->name().c_str(),
        HumanBytes(free_bytes).c_str()));
  LORA_RETURN_IF_ERROR(Compile(options));
  LORA_RETURN_IF_ERROR(device_->Alloc(arena_bytes_, &arena_), "for the arena");
  LORA_RETURN_IF_ERROR(device_->Alloc(persistent_bytes_, &persistent_), "for persistent tensors");
  LORA_RETURN_IF_ERROR(device_->Zero(arena_, arena_bytes_));
  LORA_RETURN_IF_ERROR(device_->Zero(persistent_, persistent_bytes_));
  for (uint32_t id = 0; id < n; ++id) {
    const schema::Tensor& t = plan.tensor(id);
    tensor_ptr_[id] = t.storage() == schema::Storage::Arena ? arena_ + t.buffer()->offset()
                                                            : persistent_ + persistent_offset[id];
  }
  LORA_RETURN_IF_ERROR(BindPrograms());
  collective_ = options.collective;
  bool collectives = false;
  for (const auto& [name, prog] : programs_)
    for (const Launch& l : prog.launches) collectives |= l.host != HostOp::kNone;
  if (collectives && collective_ && collective_->world_size() > 1) {
    LORA_RETURN_IF_ERROR(dist::Nccl::Create(collective_, &nccl_), "NCCL over %d ranks",
                         collective_->world_size());
    LORA_RETURN_IF_ERROR(device_->CreateStream(&comm_), "for NCCL's stream");
    LORA_RETURN_IF_ERROR(device_->CreateEvent(&compute_ready_, /*timing=*/false));
    LORA_RETURN_IF_ERROR(device_->CreateEvent(&sum_done_, /*timing=*/false));
    for (auto& [index, bucket] : buckets_)
      LORA_RETURN_IF_ERROR(device_->CreateEvent(&bucket.done, /*timing=*/false));
  }
  description_ = StrFormat(
      "%s (%s, %.1f GiB): %zu kernels from %zu sources (%zu compiled, %zu "
      "from the cache in %s), %s of device memory",
      device_->name().c_str(), device_->arch().c_str(), device_->total_memory() / 1073741824.0,
      launched_, sources_, compiled_, sources_ - compiled_, cache_dir_.c_str(),
      HumanBytes(device_bytes()).c_str());
  if (nccl_)
    description_ += StrFormat("; %s over %d ranks", nccl_->version().c_str(),
                              collective_->world_size());
  return OkStatus();
}

Status Executor::Compile(const ExecutorOptions& options) {
  const Plan& plan = *plan_;
  LORA_ASSIGN_OR_RETURN(const Nvrtc* nvrtc, Nvrtc::Get());
  std::string cache = KernelCacheDir(options.kernel_cache);
  std::vector<std::string> nvrtc_options = DefaultNvrtcOptions();
  std::string arch = device_->arch();
  std::vector<bool> used = LaunchedKernels(plan);

  // Kernels with the same source share one module (the adapters of every
  // layer, say): compile each distinct source once, in parallel.
  std::map<std::string, int> module_of_source;
  std::vector<int> module_of_kernel(plan.num_kernels(), -1);
  std::vector<uint32_t> first_kernel;  // per module
  for (uint32_t k = 0; k < plan.num_kernels(); ++k) {
    if (!used[k]) continue;
    std::string src = plan.kernel(k).cuda_source()->str();
    auto [it, fresh] = module_of_source.emplace(src, static_cast<int>(first_kernel.size()));
    if (fresh) first_kernel.push_back(k);
    module_of_kernel[k] = it->second;
  }
  size_t m = first_kernel.size();
  std::vector<std::string> cubins(m);
  std::vector<Status> results(m);
  std::vector<char> hits(m, 0);
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next++) < m;) {
      const schema::Kernel& kernel = plan.kernel(first_kernel[i]);
      bool hit = false;
      results[i] = CompileCached(*nvrtc, cache, kernel.cuda_source()->str(), kernel.entry()->str(),
                                 arch, nvrtc_options, &cubins[i], &hit);
      hits[i] = hit;
    }
  };
  unsigned threads = options.compile_threads > 0 ? options.compile_threads
                                                 : std::max(1u, std::thread::hardware_concurrency());
  threads = std::min<unsigned>(threads, std::max<size_t>(m, 1));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
  for (size_t i = 0; i < m; ++i)
    LORA_RETURN_IF_ERROR(results[i], "while compiling %s for %s",
                         KernelLabel(plan, first_kernel[i]).c_str(), arch.c_str());

  modules_.assign(m, nullptr);
  for (size_t i = 0; i < m; ++i)
    LORA_RETURN_IF_ERROR(device_->LoadModule(cubins[i], &modules_[i]), "loading %s",
                         KernelLabel(plan, first_kernel[i]).c_str());

  kernel_steps_.assign(plan.num_kernels(), {});
  for (uint32_t k = 0; k < plan.num_kernels(); ++k) {
    if (!used[k]) continue;
    const schema::Kernel& kernel = plan.kernel(k);
    std::vector<Step> steps;
    Step first;
    first.grid = ToDim3(kernel.grid());
    first.block = ToDim3(kernel.block());
    first.shared_bytes = kernel.shared_bytes();
    steps.push_back(first);
    if (kernel.cuda_next())
      for (const schema::CudaStep* s : *kernel.cuda_next()) {
        Step st;
        st.grid = ToDim3(s->grid());
        st.block = ToDim3(s->block());
        st.shared_bytes = s->shared_bytes();
        steps.push_back(st);
      }
    std::vector<std::string> entries = KernelEntries(kernel);
    for (size_t i = 0; i < steps.size(); ++i) {
      Step& st = steps[i];
      LORA_RETURN_IF_ERROR(device_->GetFunction(modules_[module_of_kernel[k]], entries[i], &st.fn),
                           "in %s", KernelLabel(plan, k).c_str());
      if (st.shared_bytes > static_cast<unsigned>(device_->max_shared_optin()))
        return InvalidArgumentError(StrFormat(
            "%s: %s's launch %s needs %u bytes of shared memory; %s allows %d per block",
            plan.path().c_str(), KernelLabel(plan, k).c_str(), entries[i].c_str(),
            st.shared_bytes, device_->name().c_str(), device_->max_shared_optin()));
      if (st.shared_bytes > kDefaultSharedLimit)
        LORA_RETURN_IF_ERROR(device_->SetMaxDynamicShared(st.fn, static_cast<int>(st.shared_bytes)),
                             "for %s", entries[i].c_str());
    }
    kernel_steps_[k] = std::move(steps);
  }

  sources_ = m;
  compiled_ = 0;
  for (char h : hits) compiled_ += !h;
  launched_ = std::count(used.begin(), used.end(), true);
  cache_dir_ = cache;
  return OkStatus();
}

Status Executor::BindPrograms() {
  const Plan& plan = *plan_;
  int max_keys = 0;
  for (uint32_t p = 0; p < plan.num_programs(); ++p) {
    const schema::Program& sp = plan.program(p);
    Program prog;
    if (sp.launches())
      for (const schema::Launch* l : *sp.launches()) {
        const schema::Kernel& kernel = plan.kernel(l->kernel());
        Launch launch;
        launch.kernel = l->kernel();
        launch.steps = kernel_steps_[l->kernel()];
        if (IsHostCollective(kernel)) {
          const std::string kind = kernel.kind()->str();
          launch.host = kind == "grad_all_reduce_start"  ? HostOp::kBucketStart
                        : kind == "grad_all_reduce_wait" ? HostOp::kBucketWait
                                                         : HostOp::kAllReduceSum;
          // The loader checked the operands against kernel_kinds.def
          // (counts, F32 throughout) and the buckets' starts and waits.
          cpu::KernelParams params;
          LORA_RETURN_IF_ERROR(cpu::KernelParamsFromPlan(kernel, &params), "%s",
                               KernelLabel(plan, l->kernel()).c_str());
          if (launch.host == HostOp::kBucketStart) {
            kernels::params::grad_all_reduce_start p;
            LORA_RETURN_IF_ERROR(params.Typed(&p));
            launch.bucket = p.bucket;
            if (!prog.sync) prog.sync = tensor_ptr_[l->inputs()->Get(0)];
            buckets_[p.bucket].tensors.assign(l->outputs()->begin(), l->outputs()->end());
          } else if (launch.host == HostOp::kBucketWait) {
            kernels::params::grad_all_reduce_wait p;
            LORA_RETURN_IF_ERROR(params.Typed(&p));
            launch.bucket = p.bucket;
            prog.waits.insert(p.bucket);
          }
          if (l->inputs())
            for (uint32_t t : *l->inputs()) launch.args.push_back(tensor_ptr_[t]);
          if (l->outputs())
            for (uint32_t t : *l->outputs()) {
              launch.args.push_back(tensor_ptr_[t]);
              launch.spans.push_back({tensor_ptr_[t], plan.tensor_bytes(t) / 4});
            }
          prog.launches.push_back(std::move(launch));
          continue;
        }
        // The kernel ABI (docs/cuda.md): inputs, outputs, the workspace,
        // the dropout key.
        if (l->inputs())
          for (uint32_t t : *l->inputs()) launch.args.push_back(tensor_ptr_[t]);
        if (l->outputs())
          for (uint32_t t : *l->outputs()) launch.args.push_back(tensor_ptr_[t]);
        if (kernel.cuda_workspace_bytes() > 0) {
          if (l->workspace_offset() + kernel.cuda_workspace_bytes() > plan.arena().size())
            return InvalidArgumentError(StrFormat("%s: %s's workspace ends past the arena",
                                                  plan.path().c_str(),
                                                  KernelLabel(plan, l->kernel()).c_str()));
          launch.args.push_back(arena_ + l->workspace_offset());
        }
        cpu::KernelParams params;
        LORA_RETURN_IF_ERROR(cpu::KernelParamsFromPlan(kernel, &params), "%s",
                             KernelLabel(plan, l->kernel()).c_str());
        kernels::AnyParams typed;
        LORA_RETURN_IF_ERROR(params.TypedAny(&typed), "%s", KernelLabel(plan, l->kernel()).c_str());
        if (std::optional<kernels::DropoutDraw> drop = kernels::DropoutOf(typed)) {
          launch.key_arg = static_cast<int>(launch.args.size());
          launch.key_slot = prog.num_keys++;
          launch.rng_stream = static_cast<uint64_t>(drop->stream);
          launch.args.push_back(0);
        }
        prog.launches.push_back(std::move(launch));
      }
    max_keys = std::max(max_keys, prog.num_keys);
    programs_[sp.name()->str()] = std::move(prog);
  }
  keys_bytes_ = RoundUp(sizeof(uint64_t) * std::max(max_keys, 1), kAlign);
  LORA_RETURN_IF_ERROR(device_->Alloc(keys_bytes_, &keys_), "for dropout keys");
  for (auto& [name, prog] : programs_)
    for (Launch& l : prog.launches)
      if (l.key_arg >= 0) l.args[l.key_arg] = keys_ + sizeof(uint64_t) * l.key_slot;
  return OkStatus();
}

// Host copies run on the default stream, which does not wait for NCCL's:
// a copy of an accumulator that a bucket in flight holds first waits for the
// sums. (Other copies, such as the loss read after train_step or the
// optimizer's scalars, go on while NCCL sums.)
Status Executor::FinishSumsHolding(uint32_t id, const char* copy) const {
  for (int64_t b : in_flight_) {
    const std::vector<uint32_t>& held = buckets_.at(b).tensors;
    if (std::find(held.begin(), held.end(), id) != held.end())
      return FinishSums(
          StrFormat("a host %s of tensor %u (%s)", copy, id,
                    plan_->tensor(id).name() ? plan_->tensor(id).name()->c_str() : "?"));
  }
  return OkStatus();
}

Status Executor::Write(uint32_t id, const void* data, size_t bytes) {
  if (id >= tensor_ptr_.size() || bytes != plan_->tensor_bytes(id))
    return InternalError(StrFormat("device write of tensor %u: bad id or size", id));
  LORA_RETURN_IF_ERROR(FinishSumsHolding(id, "write"));
  return device_->Upload(tensor_ptr_[id], data, bytes);
}

Status Executor::Read(uint32_t id, void* data, size_t bytes) const {
  if (id >= tensor_ptr_.size() || bytes != plan_->tensor_bytes(id))
    return InternalError(StrFormat("device read of tensor %u: bad id or size", id));
  LORA_RETURN_IF_ERROR(FinishSumsHolding(id, "read"));
  return device_->Download(data, tensor_ptr_[id], bytes);
}

Status Executor::Zero(uint32_t id) {
  if (id >= tensor_ptr_.size()) return InternalError("device zero: bad tensor id");
  LORA_RETURN_IF_ERROR(FinishSumsHolding(id, "write"));
  return device_->Zero(tensor_ptr_[id], plan_->tensor_bytes(id));
}

Status Executor::Run(const std::string& program, uint64_t step_seed,
                     std::vector<double>* launch_ms) {
  auto it = programs_.find(program);
  if (it == programs_.end())
    return NotFoundError(StrFormat("the plan has no program '%s'", program.c_str()));
  Program& prog = it->second;
  if (launch_ms) {
    while (events_.size() < prog.launches.size() + 1) {
      Event e = nullptr;
      LORA_RETURN_IF_ERROR(device_->CreateEvent(&e), "timing %s", program.c_str());
      events_.push_back(e);
    }
  }
  if (prog.num_keys > 0) {
    std::vector<uint64_t> keys(prog.num_keys);
    for (const Launch& l : prog.launches)
      if (l.key_slot >= 0) keys[l.key_slot] = cpu::DropoutKey(step_seed, l.rng_stream);
    LORA_RETURN_IF_ERROR(device_->Upload(keys_, keys.data(), keys.size() * sizeof(uint64_t)));
  }
  // Buckets still summing from an earlier program: a program that waits for
  // them does so in its own order (the optimizer); any other first lets the
  // sums finish (its kernels may write the accumulators).
  if (std::any_of(in_flight_.begin(), in_flight_.end(),
                  [&](int64_t b) { return prog.waits.count(b) == 0; }))
    LORA_RETURN_IF_ERROR(FinishSums(program));
  // The program's sync_gradients, read before its first launch (reading it
  // at the first bucket would stall the host until the backward got there).
  float sync = 0;
  if (nccl_ && prog.sync) LORA_RETURN_IF_ERROR(device_->Download(&sync, prog.sync, sizeof(float)));
  std::vector<void*> params;
  if (launch_ms) LORA_RETURN_IF_ERROR(device_->RecordEvent(events_[0]));
  for (size_t i = 0; i < prog.launches.size(); ++i) {
    Launch& l = prog.launches[i];
    params.resize(l.args.size());
    for (size_t a = 0; a < l.args.size(); ++a) params[a] = &l.args[a];
    if (l.host != HostOp::kNone)
      LORA_RETURN_IF_ERROR(RunHost(l, program, sync), "in %s, launch %zu (%s)", program.c_str(), i,
                           KernelLabel(*plan_, l.kernel).c_str());
    for (const Step& s : l.steps) {
      Status st = device_->Launch(s.fn, s.grid, s.block, s.shared_bytes, params.data());
      if (st.ok() && check_each_launch_) st = device_->Synchronize();
      LORA_RETURN_IF_ERROR(st, "in %s, launch %zu (%s)", program.c_str(), i,
                           KernelLabel(*plan_, l.kernel).c_str());
    }
    if (launch_ms) LORA_RETURN_IF_ERROR(device_->RecordEvent(events_[i + 1]));
  }
  LORA_RETURN_IF_ERROR(WaitForDevice(program));
  if (launch_ms) {
    launch_ms->assign(prog.launches.size(), 0.0);
    for (size_t i = 0; i < prog.launches.size(); ++i) {
      float ms = 0;
      LORA_RETURN_IF_ERROR(device_->ElapsedMs(events_[i], events_[i + 1], &ms));
      (*launch_ms)[i] = ms;
    }
  }
  return OkStatus();
}

// NCCL runs on comm_: a bucket's sums start once the kernels before its
// start have run (compute_ready_), and the kernels after its wait run once
// the sums are done (the bucket's event), so the sums overlap the rest of
// the backward. Every NCCL call goes on comm_, in program order, as NCCL
// needs the same order on every rank.
Status Executor::RunHost(const Launch& l, const std::string& program, float sync) {
  switch (l.host) {
    case HostOp::kNone:
      return OkStatus();
    case HostOp::kBucketWait: {
      if (!nccl_ || !in_flight_.erase(l.bucket)) return OkStatus();
      return device_->WaitEvent(nullptr, buckets_.at(l.bucket).done);
    }
    case HostOp::kBucketStart: {
      if (!nccl_ || sync == 0.0f) return OkStatus();
      LORA_RETURN_IF_ERROR(CommAfterKernels());
      LORA_RETURN_IF_ERROR(nccl_->GroupStart());
      for (const auto& [ptr, n] : l.spans)
        LORA_RETURN_IF_ERROR(nccl_->AllReduceSum(ptr, ptr, n, comm_));
      LORA_RETURN_IF_ERROR(nccl_->GroupEnd());
      LORA_RETURN_IF_ERROR(device_->RecordEvent(buckets_.at(l.bucket).done, comm_));
      in_flight_.insert(l.bucket);
      return OkStatus();
    }
    case HostOp::kAllReduceSum: {
      const size_t n = l.spans.empty() ? 0 : l.spans[0].second;
      if (nccl_) {
        LORA_RETURN_IF_ERROR(CommAfterKernels());
        LORA_RETURN_IF_ERROR(nccl_->AllReduceSum(l.args[0], l.args[1], n, comm_));
        LORA_RETURN_IF_ERROR(device_->RecordEvent(sum_done_, comm_));
        return device_->WaitEvent(nullptr, sum_done_);
      }
      if (l.args[0] == l.args[1]) return OkStatus();
      std::vector<float> v(n);
      LORA_RETURN_IF_ERROR(device_->Download(v.data(), l.args[0], n * sizeof(float)));
      return device_->Upload(l.args[1], v.data(), n * sizeof(float));
    }
  }
  (void)program;
  return OkStatus();
}

Status Executor::CommAfterKernels() {
  LORA_RETURN_IF_ERROR(device_->RecordEvent(compute_ready_));
  return device_->WaitEvent(comm_, compute_ready_);
}

Status Executor::PollIdle(Stream stream, const std::string& where, const std::string& what) const {
  const auto deadline = collective_->Deadline();
  dist::Backoff backoff;
  for (;;) {
    bool done = false;
    LORA_RETURN_IF_ERROR(device_->Query(&done, stream), "%s", where.c_str());
    if (done) return OkStatus();
    LORA_RETURN_IF_ERROR(nccl_->AsyncError(), "%s", where.c_str());
    if (Status peer = collective_->PeerFailure(); !peer.ok()) {
      nccl_->Abort();
      return peer;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      nccl_->Abort();
      return collective_->Unresponsive(what);
    }
    backoff.Pause();
  }
}

Status Executor::TimeGradientSum(int64_t bytes, double* ms) {
  if (!nccl_) return InvalidArgumentError("no NCCL communicator: one rank, or no collectives");
  LORA_RETURN_IF_ERROR(FinishSums("timing a sum alone"));
  LORA_RETURN_IF_ERROR(WaitForDevice("the last program"));
  const size_t n = static_cast<size_t>(std::max<int64_t>(bytes, 4) / 4);
  DevicePtr buf = 0;
  LORA_RETURN_IF_ERROR(device_->Alloc(n * sizeof(float), &buf), "%zu bytes to time NCCL's sum",
                       n * sizeof(float));
  Event start = nullptr, end = nullptr;
  Status s = device_->Zero(buf, n * sizeof(float));
  if (s.ok()) s = device_->CreateEvent(&start);
  if (s.ok()) s = device_->CreateEvent(&end);
  if (s.ok()) s = device_->RecordEvent(start, comm_);
  if (s.ok()) s = nccl_->AllReduceSum(buf, buf, n, comm_);
  if (s.ok()) s = device_->RecordEvent(end, comm_);
  if (s.ok()) s = PollIdle(comm_, "timing NCCL's sum alone", "an NCCL sum of the gradients' bytes");
  float elapsed = 0;
  if (s.ok()) s = device_->ElapsedMs(start, end, &elapsed);
  if (start) device_->DestroyEvent(start);
  if (end) device_->DestroyEvent(end);
  device_->Free(buf);
  *ms = elapsed;
  return s;
}

Status Executor::FinishSums(const std::string& before) const {
  if (in_flight_.empty()) return OkStatus();
  LORA_RETURN_IF_ERROR(PollIdle(comm_, "before " + before, "the NCCL sums before " + before));
  in_flight_.clear();
  return OkStatus();
}

Status Executor::WaitForDevice(const std::string& program) {
  if (!nccl_) return device_->Synchronize();
  // A peer that stopped would leave NCCL's kernels, and so the stream that
  // waits for them, waiting forever. The default stream is done here; sums
  // of buckets in flight may go on past the program's end, into the
  // optimizer's waits.
  return PollIdle(nullptr, "after " + program, "the NCCL sums of " + program);
}

}  // namespace lorart::cuda
