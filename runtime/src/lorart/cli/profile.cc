// lorart profile: times every launch of a plan's programs on the CPU or the
// GPU and prints where a training step's time goes — per kernel kind and the
// slowest launches, with the achieved TFLOP/s of the matrix kernels.
//
// The inputs are synthetic (the runtime does not need data to time a step):
// full rows of random tokens, one document a row; preference plans get one
// pair a row (the first half of the row's loss tokens chosen, the second
// rejected). Times are medians over --iters runs after --warmup runs: on
// CUDA from device events around each launch (its cuda_next steps
// included), on the CPU the kernel call's wall time.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <variant>

#include <nlohmann/json.hpp>

#include "lorart/base/strings.h"
#include "lorart/cli/commands.h"
#include "lorart/cpu/kernel.h"
#include "lorart/dist/collective.h"
#include "lorart/io/safetensors_write.h"
#include "lorart/plan/kernel_kinds.h"
#include "lorart/train/trainer.h"

namespace lorart {
namespace cli {
namespace {

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Floating-point operations of a launch: kernel_kinds.def's model, the one
// `lorac compile --report` uses too.
double LaunchFlops(const std::string& kind, const cpu::KernelParams& p) {
  struct Params : kernels::IntParams {
    const cpu::KernelParams* p;
    double Int(const char* name) const override {
      int64_t v = 0;
      return p->Get(name, &v) ? static_cast<double>(v) : 0.0;
    }
  } params;
  params.p = &p;
  return kernels::KernelFlops(kind, params);
}

// A short description of a launch's problem: "m=4096 n=4096 k=4096
// rank=16". The sizes are the integer parameters its operands' dimensions
// are declared in (kernel_kinds.def), in the order they first appear there;
// zero sizes (no adapter) are left out.
std::string Shape(const std::string& kind, const cpu::KernelParams& p) {
  const kernels::KindSpec* spec = kernels::FindKind(kind);
  if (!spec) return "";
  std::vector<std::string> sizes;
  for (const kernels::OperandSpec& o : spec->operands) {
    for (const std::string& dims : {std::string(o.shape), std::string(o.when)}) {
      for (size_t at = dims.find("I("); at != std::string::npos; at = dims.find("I(", at + 2)) {
        const size_t close = dims.find(')', at);
        if (close == std::string::npos) break;
        std::string name = dims.substr(at + 2, close - at - 2);
        const kernels::ParamSpec* ps = spec->Find(name);
        if (ps && ps->type == kernels::ParamType::kInt &&
            std::find(sizes.begin(), sizes.end(), name) == sizes.end())
          sizes.push_back(name);
      }
    }
  }
  std::string s;
  for (const std::string& name : sizes) {
    int64_t v = 0;
    if (p.Get(name.c_str(), &v) && v > 0)
      s += StrFormat("%s%s=%lld", s.empty() ? "" : " ", name.c_str(), static_cast<long long>(v));
  }
  return s;
}

// A full synthetic batch of the plan's grid.
data::Batch SyntheticBatch(const Plan& plan, uint64_t seed) {
  const schema::Hyperparameters& d = plan.defaults();
  const int64_t rows = d.micro_batch(), seq = d.seq_len();
  const int64_t vocab = std::max<int64_t>(2, plan.model().vocab_size());
  const bool dpo = d.objective() && d.objective()->str() == "dpo";
  std::mt19937_64 rng(seed);
  data::Batch b;
  b.micro_batch = rows;
  b.seq_len = seq;
  b.rows = rows;
  b.documents = rows;
  const int64_t n = rows * seq;
  b.tokens.resize(n);
  b.positions.resize(n);
  b.segment_ids.assign(n, 0);
  b.targets.resize(n);
  b.loss_mask.assign(n, 1);
  for (int64_t t = 0; t < n; ++t) {
    b.tokens[t] = static_cast<int32_t>(rng() % vocab);
    b.targets[t] = static_cast<int32_t>(rng() % vocab);
    b.positions[t] = static_cast<int32_t>(t % seq);
  }
  if (dpo) {
    b.sequence_ids.resize(n);
    for (int64_t t = 0; t < n; ++t)
      b.sequence_ids[t] = static_cast<int32_t>(2 * (t / seq) + (t % seq >= seq / 2 ? 1 : 0));
    b.pair_mask.assign(rows, 1);
    b.replay_mask.assign(n, 0);
  }
  b.real_tokens = n;
  b.target_tokens = n;
  return b;
}

struct LaunchStats {
  uint32_t index = 0, kernel = 0;
  std::string kind, entry, shape;
  double ms = 0, flops = 0;
};

}  // namespace

Command AddProfileCommand(CLI::App& root, std::ostream& out) {
  struct Options {
    std::string plan, base, json;
    std::vector<std::string> programs;
    int threads = 0, iters = 5, warmup = 2, top = 15;
    DeviceFlags device;
    DistFlags dist;
  };
  auto o = std::make_shared<Options>();
  Command c;
  c.app = root.add_subcommand(
      "profile", "Time every kernel launch of a plan's programs (synthetic inputs) and print "
                 "where a step's time goes");
  c.app->add_option("plan", o->plan, "train.bin from lorac compile")->required();
  c.app->add_option("--base", o->base, "Base model directory (lorart init-model makes a random "
                                       "one of any config)")
      ->required();
  c.app->add_option("--program", o->programs,
                    "Programs to time (repeatable; default: train_step and optimizer_step)");
  c.app->add_option("--iters", o->iters, "Timed runs of each program (the median is reported)")
      ->check(CLI::Range(1, 1000));
  c.app->add_option("--warmup", o->warmup, "Untimed runs first")->check(CLI::Range(0, 1000));
  c.app->add_option("--top", o->top, "Launches listed, slowest first")->check(CLI::Range(0, 100000));
  c.app->add_option("--json", o->json, "Also write every launch's median time as JSON here");
  c.app->add_option("--threads", o->threads, "CPU threads (0: all)");
  o->device.Add(c.app);
  o->dist.Add(c.app);
  c.run = [o, &root_out = out]() -> Status {
    // Under mpirun with a --data-parallel plan every rank runs the programs
    // and rank 0 prints how much of the gradient all-reduce the backward hid.
    std::unique_ptr<dist::Collective> coll;
    LORA_RETURN_IF_ERROR(o->dist.Open(&coll));
    std::ostringstream discard;
    std::ostream& out = coll->rank() == 0 ? root_out : discard;
    auto body = [&]() -> Status {
      SessionOptions so;
      so.num_threads = o->threads;
      so.collective = coll.get();
      LORA_RETURN_IF_ERROR(o->device.Apply(&so));
      LORA_RETURN_IF_ERROR(DistFlags::RankGpu(o->device, *coll, &so));
      std::unique_ptr<Session> s;
      LORA_RETURN_IF_ERROR(Session::Open(o->plan, so, &s));
      out << "device: " << s->DeviceDescription() << "\n";
      LORA_RETURN_IF_ERROR(s->BindWeights(o->base));
      LORA_RETURN_IF_ERROR(s->InitTrainable(1));
      const Plan& plan = s->plan();
      std::vector<std::string> names = o->programs;
      if (names.empty())
        for (const char* name : {programs::kTrainStep, programs::kOptimizerStep})
          if (plan.FindProgram(name)) names.push_back(name);
      if (names.empty()) return InvalidArgumentError(o->plan + ": no program to profile");
      std::vector<cpu::KernelParams> params(plan.num_kernels());
      for (uint32_t k = 0; k < plan.num_kernels(); ++k)
        LORA_RETURN_IF_ERROR(cpu::KernelParamsFromPlan(plan.kernel(k), &params[k]));
      data::Batch batch = SyntheticBatch(plan, 7);
      const bool data_parallel = IsDataParallel(plan);
      const int world = coll->world_size();
      LORA_RETURN_IF_ERROR(CheckRanksCanRun(plan, world));
      std::vector<double> exposed_ms;  // waiting for the buckets after each backward
      nlohmann::json report = {{"plan", o->plan},
                               {"device", s->DeviceDescription()},
                               {"iters", o->iters},
                               {"micro_batch", plan.defaults().micro_batch()},
                               {"seq_len", plan.defaults().seq_len()},
                               {"programs", nlohmann::json::object()}};
      for (const std::string& name : names) {
        const schema::Program* prog = plan.FindProgram(name);
        if (!prog) return NotFoundError(StrFormat("the plan has no program '%s'", name.c_str()));
        const size_t n = prog->launches() ? prog->launches()->size() : 0;
        std::vector<std::vector<double>> per_launch(n);
        std::vector<double> wall, ms;
        for (int it = 0; it < o->warmup + o->iters; ++it) {
          // Inputs before every run: a program may reuse its inputs' arena
          // space once it has read them.
          if (name == programs::kOptimizerStep) {
            LORA_RETURN_IF_ERROR(s->SetScalar(name, InputPort::LearningRate, 1e-5f));
            LORA_RETURN_IF_ERROR(s->SetScalar(name, InputPort::Step, 1.0f));
            LORA_RETURN_IF_ERROR(
                s->SetScalar(name, InputPort::TokenCount, static_cast<float>(batch.target_tokens)));
          } else if (name != "logits") {
            LORA_RETURN_IF_ERROR(FeedBatch(s.get(), name, batch), "feeding %s", name.c_str());
          }
          const bool sync = data_parallel && name == programs::kTrainStep;
          if (sync) LORA_RETURN_IF_ERROR(s->SetScalar(name, InputPort::SyncGradients, 1.0f));
          auto start = std::chrono::steady_clock::now();
          LORA_RETURN_IF_ERROR(s->Run(name, 1000 + it, it >= o->warmup ? &ms : nullptr));
          double w =
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                  .count();
          if (sync) {
            // What the optimizer step would wait for: the all-reduce the
            // backward did not hide.
            auto wait = std::chrono::steady_clock::now();
            LORA_RETURN_IF_ERROR(coll->WaitAll(), "after %s", name.c_str());         // MPI's (CPU)
            LORA_RETURN_IF_ERROR(s->FinishCollectives(), "after %s", name.c_str());  // NCCL's
            if (it >= o->warmup)
              exposed_ms.push_back(
                  std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - wait)
                      .count());
          }
          if (it < o->warmup) continue;
          wall.push_back(w);
          for (size_t i = 0; i < n && i < ms.size(); ++i) per_launch[i].push_back(ms[i]);
        }
        // A skipped update must not leave the gradients growing run after run.
        if (name == programs::kTrainStep) LORA_RETURN_IF_ERROR(s->ZeroGradients());
        std::vector<LaunchStats> launches;
        double total = 0, flops = 0;
        for (size_t i = 0; i < n; ++i) {
          const schema::Launch* l = prog->launches()->Get(static_cast<unsigned>(i));
          const schema::Kernel& k = plan.kernel(l->kernel());
          LaunchStats st;
          st.index = static_cast<uint32_t>(i);
          st.kernel = l->kernel();
          st.kind = k.kind()->str();
          st.entry = k.entry() && k.entry()->size() ? k.entry()->str()
                                                    : (k.name() ? k.name()->str() : st.kind);
          st.shape = Shape(st.kind, params[l->kernel()]);
          st.ms = Median(per_launch[i]);
          st.flops = LaunchFlops(st.kind, params[l->kernel()]);
          total += st.ms;
          flops += st.flops;
          launches.push_back(st);
        }
        const double wall_ms = Median(wall);
        out << StrFormat(
            "\n%s: %.3f ms a run (median of %d; launches %.3f ms), %zu launches, %.2f "
            "TFLOP/s over the run\n",
            name.c_str(), wall_ms, o->iters, total, n, wall_ms > 0 ? flops / (wall_ms * 1e9) : 0.0);
        // By kind, slowest first.
        struct Kind {
          int launches = 0;
          double ms = 0, flops = 0;
        };
        std::map<std::string, Kind> kinds;
        for (const LaunchStats& l : launches) {
          Kind& k = kinds[l.kind];
          ++k.launches;
          k.ms += l.ms;
          k.flops += l.flops;
        }
        std::vector<std::pair<std::string, Kind>> by_kind(kinds.begin(), kinds.end());
        std::stable_sort(by_kind.begin(), by_kind.end(),
                         [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
        out << "| kernel kind | launches | ms | share | TFLOP/s |\n| --- | --- | --- | --- | --- "
               "|\n";
        for (const auto& [kind, k] : by_kind)
          out << StrFormat(
              "| %s | %d | %.3f | %.1f%% | %s |\n", kind.c_str(), k.launches, k.ms,
              total > 0 ? 100 * k.ms / total : 0.0,
              k.flops > 0 && k.ms > 0 ? StrFormat("%.2f", k.flops / (k.ms * 1e9)).c_str() : "");
        std::vector<LaunchStats> slow = launches;
        std::stable_sort(slow.begin(), slow.end(),
                         [](const LaunchStats& a, const LaunchStats& b) { return a.ms > b.ms; });
        if (o->top > 0 && !slow.empty()) {
          out << "\n| launch | kind | kernel | shape | ms | TFLOP/s |\n| --- | --- | --- | --- | "
                 "--- | --- |\n";
          for (size_t i = 0; i < slow.size() && i < static_cast<size_t>(o->top); ++i) {
            const LaunchStats& l = slow[i];
            out << StrFormat(
                "| %u | %s | %s | %s | %.4f | %s |\n", l.index, l.kind.c_str(), l.entry.c_str(),
                l.shape.c_str(), l.ms,
                l.flops > 0 && l.ms > 0 ? StrFormat("%.2f", l.flops / (l.ms * 1e9)).c_str() : "");
          }
        }
        nlohmann::json js = nlohmann::json::array();
        for (const LaunchStats& l : launches) {
          nlohmann::json p = nlohmann::json::object();
          for (const auto& [key, value] : params[l.kernel].values())
            std::visit([&, k = key](const auto& v) { p[k] = v; }, value);
          js.push_back({{"launch", l.index},
                        {"kernel", l.kernel},
                        {"kind", l.kind},
                        {"entry", l.entry},
                        {"ms", l.ms},
                        {"flops", l.flops},
                        {"params", p}});
        }
        report["programs"][name] = {{"wall_ms", wall_ms}, {"launch_ms", total}, {"launches", js}};
      }
      // The gradient bytes of the plan's buckets.
      int64_t bytes = 0, buckets = 0;
      for (uint32_t k = 0; k < plan.num_kernels(); ++k) {
        if (kernels::KindOf(plan.kernel(k).kind()->str()) != kernels::Kind::grad_all_reduce_start)
          continue;
        kernels::params::grad_all_reduce_start p;
        LORA_RETURN_IF_ERROR(params[k].Typed(&p));
        bytes += p.bytes;
        ++buckets;
      }
      // Each rank's median wait after its backward; the last rank to finish
      // its backward waits the least (the others also wait for it): its
      // wait is the communication the backward did not hide.
      double exposed = 0, skew = 0;
      const bool measured = data_parallel && world > 1 && !exposed_ms.empty();
      if (measured) {
        std::vector<double> waits(static_cast<size_t>(world), 0.0);
        waits[static_cast<size_t>(coll->rank())] = Median(exposed_ms);
        LORA_RETURN_IF_ERROR(
            coll->AllReduceSum(waits.data(), waits.size(), "profile: the ranks' waits"));
        exposed = *std::min_element(waits.begin(), waits.end());
        skew = *std::max_element(waits.begin(), waits.end()) - exposed;
      }
      if (measured) {
        // What a sum of as many bytes costs with nothing to hide it behind,
        // the way the plan's sums run: NCCL's on its own stream (CUDA, which
        // runs them beside the backward), the collective's on the host (CPU).
        const bool nccl = s->device() == DeviceKind::kCuda;
        std::vector<float> payload(nccl ? 0 : static_cast<size_t>(bytes / 4), 1.0f);
        std::vector<double> alone;
        for (int it = 0; it < o->warmup + o->iters; ++it) {
          double ms = 0;
          if (nccl) {
            LORA_RETURN_IF_ERROR(s->TimeGradientSum(bytes, &ms));
          } else {
            auto start = std::chrono::steady_clock::now();
            LORA_RETURN_IF_ERROR(coll->AllReduceSum(payload.data(), payload.size(),
                                                    "profile: the gradient bytes alone"));
            ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count();
          }
          if (it >= o->warmup) alone.push_back(ms);
        }
        const double comm = Median(alone);
        const double hidden = comm > 0 ? std::clamp(1.0 - exposed / comm, 0.0, 1.0) : 0.0;
        out << StrFormat(
            "\ndata parallel: %d ranks (%s)%s; %lld gradient buckets, %.2f MiB all-reduced per "
            "optimizer step%s; the last rank to finish its backward waited %.3f ms for them "
            "(median; the others up to %.3f ms longer, for it), an all-reduce of the same bytes "
            "alone takes %.3f ms: %.0f%% of the communication overlapped the backward\n",
            world, coll->description().c_str(), nccl ? " over NCCL" : "",
            static_cast<long long>(buckets), static_cast<double>(bytes) / (1 << 20),
            nccl ? ", on NCCL's own stream beside the backward" : "", exposed, skew, comm,
            100 * hidden);
        report["data_parallel"] = {{"ranks", world},
                                   {"buckets", buckets},
                                   {"bytes_per_step", bytes},
                                   {"exposed_wait_ms", exposed},
                                   {"rank_skew_ms", skew},
                                   {"all_reduce_alone_ms", comm},
                                   {"overlapped_fraction", hidden}};
      }
      if (!o->json.empty() && coll->rank() == 0)
        LORA_RETURN_IF_ERROR(WriteFileAtomically(o->json, report.dump(1) + "\n"));
      return OkStatus();
    };
    return DistFlags::RunRank(*coll, body);
  };
  return c;
}

}  // namespace cli
}  // namespace lorart
