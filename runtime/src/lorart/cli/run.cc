// lorart run: trains with a compiled plan. lorart eval: loss and perplexity
// of the base model or base + adapter on a data file.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <memory>
#include <sstream>

#include "lorart.h"
#include "lorart/cli/commands.h"
#include "lorart/cuda/driver.h"
#include "lorart/cuda/nvrtc.h"
#include "lorart/data/dataset.h"
#include "lorart/data/tokenizer.h"
#include "lorart/dist/collective.h"
#include "lorart/exec/feed.h"
#include "lorart/exec/session.h"
#include "lorart/io/peft_adapter.h"
#include "lorart/train/fisher.h"
#include "lorart/train/trainer.h"

namespace lorart {
namespace cli {

namespace {

struct Loaded {
  std::unique_ptr<Session> session;
  std::unique_ptr<data::Tokenizer> tokenizer;
};

Status OpenAndBind(const std::string& plan, const std::string& base, const SessionOptions& so,
                   uint64_t seed, const std::string& init_adapter, Loaded* out,
                   const std::string& fisher = "", bool allow_nonfinite = false) {
  LORA_RETURN_IF_ERROR(Session::Open(plan, so, &out->session));
  if (out->session->HasEwcPenalty() != !fisher.empty())
    return InvalidArgumentError(
        fisher.empty() ? plan + ": the plan has an EWC penalty (--ewc-lambda): give its Fisher "
                                "with --ewc-fisher FILE (from lorart fisher)"
                       : plan + ": --ewc-fisher needs a plan compiled with --ewc-lambda");
  if (!fisher.empty()) LORA_RETURN_IF_ERROR(out->session->BindFisher(fisher));
  LORA_RETURN_IF_ERROR(out->session->BindWeights(base, allow_nonfinite),
                       "while binding weights from %s", base.c_str());
  LORA_RETURN_IF_ERROR(out->session->InitTrainable(seed));
  if (!init_adapter.empty())
    LORA_RETURN_IF_ERROR(LoadAdapter(out->session.get(), init_adapter));
  LORA_ASSIGN_OR_RETURN(out->tokenizer, data::Tokenizer::Load(base));
  return OkStatus();
}

StatusOr<data::DataOptions> DataOptionsFor(const Plan& plan, const TemplateFlags& chat_template,
                                           const std::string& base, uint64_t seed,
                                           bool shuffle) {
  const schema::Hyperparameters& d = plan.defaults();
  data::DataOptions o;
  o.seq_len = d.seq_len();
  o.micro_batch = d.micro_batch();
  o.pack = d.packing();
  o.shuffle = shuffle;
  o.seed = seed;
  LORA_ASSIGN_OR_RETURN(o.chat_template, chat_template.Resolve(base));
  std::string objective = d.objective() ? d.objective()->str() : "sft";
  // DPO's data are preference pairs, rendered as chat conversations.
  o.preference = objective == "dpo";
  LORA_ASSIGN_OR_RETURN(o.objective, data::ParseObjective(o.preference ? "sft" : objective));
  return o;
}

// The training or validation file: preference pairs for a DPO plan.
StatusOr<std::unique_ptr<data::Dataset>> LoadData(const std::string& path,
                                                  const data::Tokenizer& tok,
                                                  const data::DataOptions& o) {
  if (o.preference) return data::Dataset::LoadPreferences(path, tok, o);
  return data::Dataset::Load(path, tok, o);
}

Status CheckVocabulary(const Plan& plan, const data::Tokenizer& tok, const data::Dataset& ds) {
  int64_t vocab = static_cast<int64_t>(plan.model().vocab_size());
  if (ds.stats().max_token_id >= vocab)
    return InvalidArgumentError(StrFormat("%s: token id %d is outside the model's vocabulary "
                                          "(%lld): the tokenizer does not belong to this model",
                                          ds.stats().path.c_str(), ds.stats().max_token_id,
                                          static_cast<long long>(vocab)));
  (void)tok;
  return OkStatus();
}

}  // namespace

void TemplateFlags::Add(CLI::App* app) {
  app->add_option("--template", name,
                  "Chat template: auto (the model's own chat_template, else llama2), llama2, "
                  "simple, chatml, llama3 or mistral");
  app->add_option("--chat-template", file,
                  "A Jinja chat template file (overrides --template)");
  app->add_option("--template-var", variables,
                  "NAME=VALUE: a variable for a Jinja template, as apply_chat_template's keyword "
                  "arguments (e.g. enable_thinking=false); VALUE is JSON or else a string");
}

StatusOr<data::ChatTemplate> TemplateFlags::Resolve(const std::string& model_dir) const {
  return data::ResolveChatTemplate(name, file, model_dir, variables);
}

void DeviceFlags::Add(CLI::App* app) {
  app->add_option("--device", device,
                  "cpu, cuda, cuda:N (GPU N) or auto (default auto: GPU 0 when there is one)");
  app->add_option("--kernel-cache", kernel_cache,
                  "Compiled CUDA kernels (default: $XDG_CACHE_HOME/lorac)");
}

Status DeviceFlags::Apply(SessionOptions* so) const {
  LORA_ASSIGN_OR_RETURN(so->device, ParseDevice(device, &so->cuda_device));
  so->kernel_cache = kernel_cache;
  if (so->device == DeviceKind::kCuda) {
    Status gpu = cuda::CudaDeviceAvailable();
    if (!gpu.ok()) return UnavailableError("--device " + device + ": " + gpu.message());
  }
  return OkStatus();
}

void DistFlags::Add(CLI::App* app) {
  app->add_option("--dist", dist,
                  "Data-parallel ranks: auto (MPI when started by mpirun/srun, the rendezvous when "
                  "torchrun-style variables are set), mpi, torchrun or none");
  app->add_option("--collective-timeout", timeout_s,
                  "Seconds a rank waits at a collective before the job fails naming the ranks "
                  "that did not arrive");
}

Status DistFlags::Open(std::unique_ptr<dist::Collective>* out) const {
  dist::CollectiveOptions options;
  options.timeout_s = timeout_s;
  return dist::FromEnvironment(dist, options, out);
}

Status DistFlags::RunRank(dist::Collective& c, const std::function<Status()>& body) {
  Status s = body();
  if (!s.ok() && c.world_size() > 1) {
    // Checkpoints are written atomically, so the last one is whole.
    std::string message = s.message();
    std::replace(message.begin(), message.end(), '\n', ' ');
    std::cerr << "lorart: rank " << c.rank() << " of " << c.world_size() << ": error: " << message
              << "\n";
    std::cerr.flush();
    c.Abort(1, message);
  }
  return s;
}

Status DistFlags::RankGpu(const DeviceFlags& device, const dist::Collective& c,
                          SessionOptions* so) {
  if (c.world_size() <= 1 || device.device.find(':') != std::string::npos) return OkStatus();
  so->cuda_device = c.local_rank();
  if (so->device == DeviceKind::kCpu) return OkStatus();
  const int gpus = cuda::CudaDeviceCount();
  if (gpus > 0 && c.local_rank() >= gpus)
    return UnavailableError(StrFormat(
        "rank %d takes GPU %d, its index among the ranks of its host, but the host has %d: start "
        "at most one rank per GPU, or name one with --device cuda:N",
        c.rank(), c.local_rank(), gpus));
  return OkStatus();
}

// The most micro-batches one optimizer step may accumulate: far above any
// real run (a few hundred), low enough that a mistyped value is refused
// instead of training for days.
constexpr int64_t kMaxGradAccum = 1 << 16;

// The numeric flags of `lorart run`, before anything is opened: a value
// outside its range is refused, never replaced by the plan's default (the
// sentinels are 0 for --steps/--grad-accum/--lr and -1 for --min-lr and
// --warmup-steps).
template <class Options>
Status CheckRunFlags(const Options& o, bool replay_ratio_given) {
  auto bad = [](const char* flag, const std::string& value, const char* want) {
    return InvalidArgumentError(StrFormat("%s must be %s, got %s", flag, want, value.c_str()));
  };
  auto num = [](double v) { return StrFormat("%g", v); };
  auto whole = [](int64_t v) { return std::to_string(v); };
  if (o.steps < 0) return bad("--steps", whole(o.steps), ">= 0 (0: from --epochs)");
  if (!(o.epochs > 0) || !std::isfinite(o.epochs))
    return bad("--epochs", num(o.epochs), "a positive number");
  if (o.grad_accum < 0 || o.grad_accum > kMaxGradAccum)
    return bad(
        "--grad-accum", whole(o.grad_accum),
        StrFormat("in [0, %lld] (0: the plan's)", static_cast<long long>(kMaxGradAccum)).c_str());
  if (!(o.lr >= 0) || !std::isfinite(o.lr)) return bad("--lr", num(o.lr), ">= 0 (0: the plan's)");
  if (!(o.min_lr >= 0 || o.min_lr == -1) || !std::isfinite(o.min_lr))
    return bad("--min-lr", num(o.min_lr), ">= 0 (-1: the plan's)");
  if (o.warmup < -1) return bad("--warmup-steps", whole(o.warmup), ">= 0 (-1: the plan's)");
  for (auto [flag, v] : {std::pair<const char*, int64_t>{"--eval-every", o.eval_every},
                         {"--patience", o.patience},
                         {"--save-every", o.save_every},
                         {"--max-skipped", o.max_skipped}})
    if (v < 0) return bad(flag, whole(v), ">= 0");
  if (!(o.spike > 1))  // inf: never skip a step for its loss
    return bad("--spike-factor", num(o.spike),
               "a number above 1 (a loss this many times the mean; inf: off)");
  if (o.threads < 0) return bad("--threads", whole(o.threads), ">= 0 (0: all)");
  if (o.output.empty()) return InvalidArgumentError("-o must name the output directory, got ''");
  struct stat st;
  if (::stat(o.output.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
    return InvalidArgumentError(o.output +
                                ": exists and is not a directory (-o names the output "
                                "directory)");
  if (replay_ratio_given && o.replay.empty())
    return InvalidArgumentError("--replay-ratio needs --replay (the general text it mixes in)");
  return OkStatus();
}

Command AddRunCommand(CLI::App& root, std::ostream& out) {
  struct Options {
    std::string plan, data, eval, base, output = "lora-out", resume, init_adapter, replay, fisher;
    double replay_ratio = 0.1;
    std::string schedule;
    TemplateFlags chat_template;
    DeviceFlags device;
    int64_t steps = 0, grad_accum = 0, warmup = -1, eval_every = 0, patience = 0, save_every = 0;
    int64_t max_skipped = 10;
    double epochs = 1, lr = 0, min_lr = -1, spike = 5.0;
    uint64_t seed = 0;
    int threads = 0;
    bool no_progress = false, allow_nonfinite = false;
    DistFlags dist;
  };
  auto o = std::make_shared<Options>();
  Command c;
  c.app = root.add_subcommand("run", "Train with a compiled plan (train.bin) on a JSONL data file");
  CLI::App* a = c.app;
  a->add_option("plan", o->plan, "train.bin from lorac compile")->required();
  a->add_option("--data", o->data, "Training JSONL (chat, Alpaca, prompt/completion or text)")
      ->required();
  a->add_option("--base", o->base, "Base model directory (config.json, safetensors, tokenizer.json or tokenizer.model)")
      ->required();
  a->add_option("--eval", o->eval, "Validation JSONL");
  a->add_option("--replay", o->replay,
                "General text (JSONL, any format; every token trained on) mixed into the training "
                "batches against forgetting");
  a->add_option("--ewc-fisher", o->fisher,
                "The Fisher (lorart fisher) for a plan compiled with --ewc-lambda");
  a->add_option("--replay-ratio", o->replay_ratio,
                "Share of the mixed training tokens that come from --replay");
  a->add_option("-o,--output", o->output, "Output directory: adapter, metrics, checkpoints");
  a->add_option("--steps", o->steps, "Optimizer steps (0: from --epochs)");
  a->add_option("--epochs", o->epochs, "Epochs when --steps is 0");
  a->add_option("--grad-accum", o->grad_accum, "Micro-batches per optimizer step (0: the plan's)");
  a->add_option("--lr", o->lr, "Peak learning rate (0: the plan's)");
  a->add_option("--min-lr", o->min_lr, "Final learning rate (-1: the plan's)");
  a->add_option("--warmup-steps", o->warmup, "Linear warmup steps (-1: the plan's)");
  a->add_option("--schedule", o->schedule, "cosine, linear or constant (default: the plan's)");
  a->add_option("--seed", o->seed, "Seed of adapter init, shuffling and dropout");
  a->add_option("--eval-every", o->eval_every, "Evaluate every N steps (0: at the end)");
  a->add_option("--patience", o->patience, "Stop after N evaluations without improvement");
  a->add_option("--save-every", o->save_every, "Checkpoint every N steps (0: never)");
  a->add_option("--resume", o->resume, "Continue from a checkpoint directory");
  a->add_option("--init-adapter", o->init_adapter, "Start from a PEFT adapter directory");
  o->chat_template.Add(a);
  a->add_option("--spike-factor", o->spike, "Skip a step whose loss exceeds this x the mean");
  a->add_option("--max-skipped", o->max_skipped, "Stop after this many skipped steps");
  a->add_option("--threads", o->threads, "CPU threads (0: all)");
  o->device.Add(a);
  a->add_flag("--no-progress", o->no_progress, "Plain log lines instead of a progress bar");
  a->add_flag("--allow-nonfinite-weights", o->allow_nonfinite,
              "Bind base weights with NaN/Inf values (refused by default)");
  o->dist.Add(a);
  const CLI::Option* replay_ratio_flag = a->get_option("--replay-ratio");
  c.run = [o, &out, replay_ratio_flag]() -> Status {
    LORA_RETURN_IF_ERROR(CheckRunFlags(*o, replay_ratio_flag->count() > 0));
    std::unique_ptr<dist::Collective> coll;
    LORA_RETURN_IF_ERROR(o->dist.Open(&coll));
    // Only rank 0 prints; every rank's errors reach stderr.
    std::ostringstream discard;
    std::ostream& shown = coll->rank() == 0 ? out : discard;
    auto train = [&o, &discard](dist::Collective* coll, std::ostream& out) -> Status {
      SessionOptions so;
      so.num_threads = o->threads;
      so.collective = coll;
      LORA_RETURN_IF_ERROR(o->device.Apply(&so));
      LORA_RETURN_IF_ERROR(DistFlags::RankGpu(o->device, *coll, &so));
      Loaded l;
      LORA_RETURN_IF_ERROR(OpenAndBind(o->plan, o->base, so, o->seed, o->init_adapter, &l,
                                       o->fisher, o->allow_nonfinite));
      out << "device: " << l.session->DeviceDescription() << "\n";
      const Plan& plan = l.session->plan();
      LORA_ASSIGN_OR_RETURN(data::DataOptions train_opts,
                            DataOptionsFor(plan, o->chat_template, o->base, o->seed, true));
      LORA_ASSIGN_OR_RETURN(std::unique_ptr<data::Dataset> train,
                            LoadData(o->data, *l.tokenizer, train_opts));
      LORA_RETURN_IF_ERROR(CheckVocabulary(plan, *l.tokenizer, *train));
      if (!o->replay.empty() && train_opts.preference &&
          !HasInput(plan, programs::kTrainStep, InputPort::ReplayMask))
        return InvalidArgumentError(o->plan +
                                    ": --replay with a DPO plan needs a replay loss in "
                                    "it: compile with --dpo-replay-weight W");
      if (!o->replay.empty()) {
        data::DataOptions replay_opts = train_opts;
        replay_opts.objective = data::Objective::kPretrain;
        replay_opts.preference = false;
        replay_opts.shuffle = false;
        LORA_ASSIGN_OR_RETURN(std::unique_ptr<data::Dataset> general,
                              data::Dataset::Load(o->replay, *l.tokenizer, replay_opts));
        LORA_RETURN_IF_ERROR(CheckVocabulary(plan, *l.tokenizer, *general));
        LORA_ASSIGN_OR_RETURN(
            train, data::Dataset::WithReplay(*train, *general, o->replay_ratio, o->seed));
      }
      out << train->stats().Summary(train_opts.seq_len) << "\n";
      std::unique_ptr<data::Dataset> eval;
      if (!o->eval.empty()) {
        data::DataOptions eval_opts = train_opts;
        eval_opts.shuffle = false;
        LORA_ASSIGN_OR_RETURN(eval, LoadData(o->eval, *l.tokenizer, eval_opts));
        LORA_RETURN_IF_ERROR(CheckVocabulary(plan, *l.tokenizer, *eval));
        out << eval->stats().Summary(eval_opts.seq_len) << "\n";
      }
      const schema::Hyperparameters& d = plan.defaults();
      TrainOptions t;
      t.steps = o->steps;
      t.epochs = o->epochs;
      t.grad_accum = o->grad_accum > 0 ? o->grad_accum : std::max<int64_t>(1, d.grad_accum());
      if (t.grad_accum > kMaxGradAccum)
        return InvalidArgumentError(StrFormat(
            "%s: the plan's gradient accumulation is %lld micro-batches, above %lld: give "
            "--grad-accum",
            o->plan.c_str(), static_cast<long long>(t.grad_accum),
            static_cast<long long>(kMaxGradAccum)));
      t.lr = o->lr > 0 ? o->lr : d.lr();
      t.min_lr = o->min_lr >= 0 ? o->min_lr : d.min_lr();
      t.warmup_steps = o->warmup >= 0 ? o->warmup : static_cast<int64_t>(d.warmup_steps());
      t.schedule = !o->schedule.empty() ? o->schedule
                   : d.schedule()       ? d.schedule()->str()
                                        : "cosine";
      if (t.schedule != "cosine" && t.schedule != "linear" && t.schedule != "constant")
        return InvalidArgumentError("--schedule must be cosine, linear or constant");
      t.seed = o->seed;
      t.eval_every = o->eval_every;
      t.patience = o->patience;
      t.save_every = o->save_every;
      t.spike_factor = o->spike;
      t.max_skipped = o->max_skipped;
      t.output_dir = o->output;
      t.resume_dir = o->resume;
      t.base_model = o->base;
      t.progress_bar = !o->no_progress && ::isatty(2) && coll->rank() == 0;
      t.collective = coll;
      Trainer trainer(l.session.get(), train.get(), eval.get(), t,
                      coll->rank() == 0 ? &std::cerr : &discard);
      TrainResult r;
      LORA_RETURN_IF_ERROR(trainer.Run(&r));
      out << "trained " << r.steps << " steps (" << r.skipped << " skipped), final train loss "
          << r.final_train_loss;
      if (!std::isnan(r.best_eval_loss)) out << ", best eval loss " << r.best_eval_loss;
      out << "\nwrote " << o->output
          << (plan.lora() ? "/adapter_model.safetensors, adapter_config.json"
                          : "/model.safetensors, config.json and the tokenizer files")
          << ", metrics.jsonl, loss.svg\n";
      return OkStatus();
    };
    return DistFlags::RunRank(*coll, [&] { return train(coll.get(), shown); });
  };
  return c;
}

Command AddFisherCommand(CLI::App& root, std::ostream& out) {
  struct Options {
    std::string plan, data, base, output = "fisher.safetensors";
    TemplateFlags chat_template;
    int64_t batches = 0;
    int threads = 0;
    DeviceFlags device;
  };
  auto o = std::make_shared<Options>();
  Command c;
  c.app = root.add_subcommand("fisher", "Estimate the diagonal Fisher of the linear layers' "
                                        "weights on reference data, for the EWC penalty "
                                        "(lorac compile --ewc-lambda)");
  c.app->add_option("plan", o->plan, "train.bin with the weights' gradients (--no-lora --train full)")
      ->required();
  c.app->add_option("--data", o->data, "Reference JSONL (e.g. general text the model knows)")
      ->required();
  c.app->add_option("--base", o->base, "Base model directory")->required();
  c.app->add_option("-o,--output", o->output, "The Fisher (safetensors)");
  c.app->add_option("--batches", o->batches, "Micro-batches to average (0: the whole file)");
  o->chat_template.Add(c.app);
  c.app->add_option("--threads", o->threads, "CPU threads (0: all)");
  o->device.Add(c.app);
  c.run = [o, &out]() -> Status {
    SessionOptions so;
    so.num_threads = o->threads;
    LORA_RETURN_IF_ERROR(o->device.Apply(&so));
    Loaded l;
    LORA_RETURN_IF_ERROR(OpenAndBind(o->plan, o->base, so, 0, "", &l));
    LORA_ASSIGN_OR_RETURN(data::DataOptions opts,
                          DataOptionsFor(l.session->plan(), o->chat_template, o->base, 0, false));
    if (opts.preference)
      return InvalidArgumentError(o->plan + ": the Fisher needs an SFT or pretraining plan");
    LORA_ASSIGN_OR_RETURN(std::unique_ptr<data::Dataset> ds,
                          data::Dataset::Load(o->data, *l.tokenizer, opts));
    LORA_RETURN_IF_ERROR(CheckVocabulary(l.session->plan(), *l.tokenizer, *ds));
    return EstimateFisher(l.session.get(), ds.get(), o->batches, o->output, &out);
  };
  return c;
}

Command AddEvalCommand(CLI::App& root, std::ostream& out) {
  struct Options {
    std::string plan, data, base, adapter;
    TemplateFlags chat_template;
    int threads = 0;
    DeviceFlags device;
  };
  auto o = std::make_shared<Options>();
  Command c;
  c.app = root.add_subcommand("eval", "Loss and perplexity of the base model, or base + adapter, "
                                      "on a JSONL data file");
  c.app->add_option("plan", o->plan, "train.bin from lorac compile")->required();
  c.app->add_option("--data", o->data, "JSONL data file")->required();
  c.app->add_option("--base", o->base, "Base model directory")->required();
  c.app->add_option("--adapter", o->adapter, "PEFT adapter directory (default: none)");
  o->chat_template.Add(c.app);
  c.app->add_option("--threads", o->threads, "CPU threads (0: all)");
  o->device.Add(c.app);
  // Written on the C API (lorart.h), as other frameworks would use it.
  c.run = [o, &out]() -> Status {
    SessionOptions so;
    LORA_RETURN_IF_ERROR(o->device.Apply(&so));  // the one-line error without a GPU
    std::unique_ptr<lorart_session, void (*)(lorart_session*)> session(
        lorart_open_device(o->plan.c_str(), o->threads, o->device.device.c_str(),
                           o->device.kernel_cache.c_str()),
        lorart_close);
    if (!session) return InvalidArgumentError(lorart_last_error());
    out << "device: " << lorart_device(session.get()) << "\n";
    // lora_B starts at zero: without --adapter the model is the base model.
    if (lorart_bind_weights(session.get(), o->base.c_str(), 0) != 0)
      return InvalidArgumentError(lorart_last_error());
    if (!o->adapter.empty() && lorart_load_adapter(session.get(), o->adapter.c_str()) != 0)
      return InvalidArgumentError(lorart_last_error());
    LORA_ASSIGN_OR_RETURN(std::unique_ptr<data::Tokenizer> tok,
                          data::Tokenizer::Load(o->base));
    std::unique_ptr<Plan> plan = std::make_unique<Plan>();
    LORA_RETURN_IF_ERROR(LoadPlan(o->plan, plan.get()));
    LORA_ASSIGN_OR_RETURN(data::DataOptions opts,
                          DataOptionsFor(*plan, o->chat_template, o->base, 0, false));
    if (opts.preference)
      return InvalidArgumentError(o->plan + ": lorart eval does not take DPO plans yet: evaluate "
                                            "preference pairs with lorart run --eval (reward "
                                            "accuracy and margin)");
    LORA_ASSIGN_OR_RETURN(std::unique_ptr<data::Dataset> ds,
                          data::Dataset::Load(o->data, *tok, opts));
    LORA_RETURN_IF_ERROR(CheckVocabulary(*plan, *tok, *ds));
    double loss = 0, count = 0;
    data::Batch b;
    for (int64_t i = 0; i < ds->batches_per_epoch(); ++i) {
      LORA_RETURN_IF_ERROR(ds->GetBatch(0, i, &b));
      double l = 0, n = 0;
      if (lorart_eval_step(session.get(), b.tokens.data(), b.positions.data(),
                           opts.pack ? b.segment_ids.data() : nullptr, b.targets.data(),
                           b.loss_mask.data(), &l, &n) != 0)
        return InvalidArgumentError(lorart_last_error());
      loss += l;
      count += n;
    }
    if (count <= 0) return InvalidArgumentError(o->data + ": no target tokens to evaluate");
    loss /= count;
    out << "loss " << loss << ", perplexity " << std::exp(loss) << " ("
        << ds->stats().target_tokens << " target tokens, "
        << (o->adapter.empty() ? std::string("base model") : "adapter " + o->adapter) << ")\n";
    return OkStatus();
  };
  return c;
}

}  // namespace cli
}  // namespace lorart
