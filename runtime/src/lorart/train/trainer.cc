#include "lorart/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <vector>

#include "lorart/base/checksum.h"
#include "lorart/exec/feed.h"
#include "lorart/plan/ports.h"
#include "lorart/io/files.h"
#include "lorart/io/hf_model.h"
#include "lorart/io/peft_adapter.h"
#include "lorart/io/safetensors_write.h"
#include "lorart/train/checkpoint.h"
#include "lorart/train/plot.h"

namespace lorart {

namespace {

constexpr double kPi = 3.14159265358979323846;
// Applied steps in a row with a gradient norm of exactly 0 after which a run
// is declared collapsed.
constexpr int64_t kCollapseSteps = 3;

// Replaces each of `values` by its sum over the ranks (one all-reduce).
Status SumOverRanks(dist::Collective* c, std::initializer_list<double*> values, const char* what) {
  std::vector<double> v;
  for (double* p : values) v.push_back(*p);
  LORA_RETURN_IF_ERROR(c->AllReduceSum(v.data(), v.size(), what));
  size_t i = 0;
  for (double* p : values) *p = v[i++];
  return OkStatus();
}

uint64_t StepSeed(uint64_t seed, int64_t step, int64_t micro) {
  uint64_t z = seed ^ (static_cast<uint64_t>(step) * 0x9E3779B97F4A7C15ull) ^
               (static_cast<uint64_t>(micro) * 0xD1B54A32D192ED03ull);
  z ^= z >> 31;
  z *= 0x7FB5D329728EA185ull;
  z ^= z >> 27;
  return z | 1;  // never 0
}

std::string FormatDuration(double seconds) {
  char buf[32];
  int s = static_cast<int>(seconds + 0.5);
  if (s >= 3600)
    snprintf(buf, sizeof buf, "%dh%02dm", s / 3600, (s % 3600) / 60);
  else
    snprintf(buf, sizeof buf, "%dm%02ds", s / 60, s % 60);
  return buf;
}

}  // namespace

double ScheduledLearningRate(const TrainOptions& o, int64_t step, int64_t total) {
  if (o.warmup_steps > 0 && step < o.warmup_steps)
    return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  if (o.schedule == "constant") return o.lr;
  int64_t decay = std::max<int64_t>(1, total - o.warmup_steps);
  double progress = std::min(1.0, static_cast<double>(step - o.warmup_steps) / decay);
  if (o.schedule == "linear") return o.lr - (o.lr - o.min_lr) * progress;
  return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + std::cos(kPi * progress));
}

Status FeedBatch(Session* s, const std::string& program, const data::Batch& b) {
  LORA_RETURN_IF_ERROR(FeedInputs(
      s, program,
      {{InputPort::Tokens, b.tokens.data(), b.tokens.size() * 4},
       {InputPort::Positions, b.positions.data(), b.positions.size() * 4},
       {InputPort::SegmentIds, b.segment_ids.data(), b.segment_ids.size() * 4, /*optional=*/true},
       {InputPort::Targets, b.targets.data(), b.targets.size() * 4},
       {InputPort::LossMask, b.loss_mask.data(), b.loss_mask.size()}}));
  // A DPO plan takes the responses' ids and the pairs present; its data is
  // preference pairs (and only its).
  bool wants_pairs = s->plan().defaults().objective() &&
                     s->plan().defaults().objective()->str() == "dpo";
  if (wants_pairs != !b.sequence_ids.empty())
    return InvalidArgumentError(wants_pairs ? "this DPO plan needs preference pairs "
                                              "({\"prompt\", \"chosen\", \"rejected\"})"
                                            : "preference pairs need a plan compiled with "
                                              "--objective dpo");
  if (!wants_pairs) return OkStatus();
  // Replayed general text packed beside the pairs: a plan compiled with
  // --dpo-replay-weight trains on it.
  if (!HasInput(s->plan(), program, InputPort::ReplayMask) &&
      std::count(b.replay_mask.begin(), b.replay_mask.end(), 1) > 0)
    return InvalidArgumentError("the batches hold replayed text but the DPO plan has no "
                                "replay loss: compile it with --dpo-replay-weight");
  return FeedInputs(
      s, program,
      {{InputPort::SequenceIds, b.sequence_ids.data(), b.sequence_ids.size() * 4},
       {InputPort::PairMask, b.pair_mask.data(), b.pair_mask.size()},
       {InputPort::ReplayMask, b.replay_mask.data(), b.replay_mask.size(), /*optional=*/true}});
}

Trainer::Trainer(Session* session, data::Dataset* train, data::Dataset* eval,
                 TrainOptions options, std::ostream* log)
    : session_(session), train_(train), eval_(eval), o_(std::move(options)), log_(log),
      batcher_(train) {}

StatusOr<EvalResult> Trainer::Evaluate(Session* session, data::Dataset* dataset,
                                       dist::Collective* collective) {
  double loss = 0;
  double count = 0;
  EvalResult result;
  data::Batch batch;
  const int64_t world = collective ? collective->world_size() : 1;
  const int64_t rank = collective ? collective->rank() : 0;
  for (int64_t i = rank; i < dataset->batches_per_epoch(); i += world) {
    LORA_RETURN_IF_ERROR(dataset->GetBatch(0, i, &batch));
    LORA_RETURN_IF_ERROR(FeedBatch(session, programs::kEvalStep, batch));
    LORA_RETURN_IF_ERROR(session->Run(programs::kEvalStep, 0));
    LORA_ASSIGN_OR_RETURN(double l, session->GetScalar(programs::kEvalStep, OutputPort::LossSum));
    LORA_ASSIGN_OR_RETURN(double n, session->GetScalar(programs::kEvalStep, OutputPort::Count));
    LORA_RETURN_IF_ERROR(result.rewards.Add(*session, programs::kEvalStep));
    // An EWC plan's loss includes its penalty (once per token); the
    // evaluation reports the data's loss alone.
    StatusOr<double> penalty = session->GetScalar(programs::kEvalStep, OutputPort::EwcPenalty);
    if (penalty.ok()) l -= *penalty * n;
    loss += l;
    count += n;
  }
  if (collective && world > 1) {
    RewardSums& r = result.rewards;
    LORA_RETURN_IF_ERROR(
        SumOverRanks(collective, {&loss, &count, &r.chosen, &r.rejected, &r.accuracy, &r.margin},
                     "the evaluation's sums"));
    // A rank without an evaluation batch still reports DPO metrics when
    // the plan has them.
    r.present = session->plan().FindOutput(programs::kEvalStep, OutputPort::ChosenRewards) >= 0;
  }
  if (count <= 0) return InvalidArgumentError("the evaluation set has no target tokens");
  result.loss = loss / count;
  result.count = count;
  return result;
}

Status Trainer::WriteMetrics(const std::string& line) {
  if (o_.output_dir.empty() || !lead()) return OkStatus();
  std::ofstream out(o_.output_dir + "/metrics.jsonl", std::ios::app);
  out << line << "\n";
  if (!out) return UnavailableError(o_.output_dir + "/metrics.jsonl: write failed");
  return OkStatus();
}

Status Trainer::CheckRanksAgree(int64_t total) {
  dist::Collective* c = o_.collective;
  // What must be equal on every rank, as doubles (integers up to 2^53 are
  // exact; hashes are split in 32-bit halves).
  std::vector<double> mine = {static_cast<double>(o_.seed >> 32),
                              static_cast<double>(o_.seed & 0xffffffffu),
                              static_cast<double>(o_.grad_accum),
                              static_cast<double>(total),
                              o_.lr,
                              o_.min_lr,
                              static_cast<double>(o_.warmup_steps),
                              o_.schedule == "cosine"   ? 0.0
                              : o_.schedule == "linear" ? 1.0
                                                        : 2.0,
                              static_cast<double>(train_->batches_per_epoch()),
                              static_cast<double>(train_->fingerprint() >> 32),
                              static_cast<double>(train_->fingerprint() & 0xffffffffu),
                              static_cast<double>(state_.step)};
  static const char* const kNames[] = {"--seed",
                                       "--seed",
                                       "--grad-accum",
                                       "the number of optimizer steps",
                                       "--lr",
                                       "--min-lr",
                                       "--warmup-steps",
                                       "--schedule",
                                       "the training batches per epoch",
                                       "the training data (its fingerprint)",
                                       "the training data (its fingerprint)",
                                       "the step resumed at"};
  // The trainable tensors and their optimizer state (a hash of their bytes).
  LORA_ASSIGN_OR_RETURN(std::vector<Session::StateTensor> state, session_->State());
  Checksummer hash;
  for (const Session::StateTensor& t : state) hash.Update(t.data, t.bytes);
  const uint64_t h = hash.Digest();
  mine.push_back(static_cast<double>(h >> 32));
  mine.push_back(static_cast<double>(h & 0xffffffffu));
  std::vector<double> lead = mine;
  LORA_RETURN_IF_ERROR(
      c->Broadcast(lead.data(), lead.size() * sizeof(double), 0, "rank 0's run settings"));
  double differs = -1;  // the first differing entry, or -1
  for (size_t i = 0; i < mine.size() && differs < 0; ++i)
    if (mine[i] != lead[i]) differs = static_cast<double>(i);
  // Every rank learns whether any differs, so that all fail together.
  double any[2] = {differs >= 0 ? 1.0 : 0.0, differs >= 0 ? static_cast<double>(c->rank()) : 0};
  LORA_RETURN_IF_ERROR(c->AllReduceSum(any, 2, "the ranks' agreement check"));
  if (any[0] == 0) return OkStatus();
  if (differs < 0)
    return InvalidArgumentError(
        StrFormat("rank %d: another rank's run differs from rank 0's (see its error)", c->rank()));
  const size_t i = static_cast<size_t>(differs);
  const char* what =
      i < std::size(kNames) ? kNames[i] : "the initial adapter weights and optimizer state";
  return InvalidArgumentError(StrFormat(
      "rank %d: %s differs from rank 0's: every rank must run the same plan, data, options "
      "and initial adapter (same --seed, --init-adapter, --resume)",
      c->rank(), what));
}

Status Trainer::Run(TrainResult* result) {
  const int64_t per_epoch = train_->batches_per_epoch();
  if (per_epoch <= 0) return InvalidArgumentError("the training set produced no batch");
  dist::Collective* coll = o_.collective;
  const int64_t world = coll ? coll->world_size() : 1;
  const int64_t rank = coll ? coll->rank() : 0;
  const bool data_parallel_plan = IsDataParallel(session_->plan());
  LORA_RETURN_IF_ERROR(CheckRanksCanRun(session_->plan(), static_cast<int>(world)));
  // Micro-batches of the data per optimizer step, over all ranks.
  const int64_t slots = o_.grad_accum * world;
  // Without --steps the run is --epochs of the data: one optimizer step must
  // fit in it, or a large --grad-accum would silently cycle the data.
  if (o_.steps == 0 && static_cast<double>(slots) > o_.epochs * static_cast<double>(per_epoch))
    return InvalidArgumentError(StrFormat(
        "one optimizer step takes %lld micro-batches (--grad-accum %lld x %lld ranks), more than "
        "--epochs %g of this data holds (%lld micro-batches an epoch): lower --grad-accum, raise "
        "--epochs or give --steps",
        static_cast<long long>(slots), static_cast<long long>(o_.grad_accum),
        static_cast<long long>(world), o_.epochs, static_cast<long long>(per_epoch)));
  int64_t total =
      o_.steps > 0
          ? o_.steps
          : std::max<int64_t>(1, static_cast<int64_t>(std::ceil(o_.epochs * per_epoch / slots)));
  if (!o_.resume_dir.empty()) {
    LORA_RETURN_IF_ERROR(LoadCheckpoint(o_.resume_dir, o_.seed, session_, &state_, &batcher_),
                         "while resuming from %s", o_.resume_dir.c_str());
    *log_ << "resumed from " << o_.resume_dir << " at step " << state_.step << "\n";
    if (state_.step >= total)
      return InvalidArgumentError(StrFormat(
          "%s is at step %lld, which is not before the last step (%lld): nothing to train "
          "(raise --steps or --epochs)",
          o_.resume_dir.c_str(), static_cast<long long>(state_.step),
          static_cast<long long>(total)));
  }
  if (world > 1) {
    LORA_RETURN_IF_ERROR(CheckRanksAgree(total));
    const schema::Hyperparameters& d = session_->plan().defaults();
    *log_ << "data parallel: " << world << " ranks (" << coll->description()
          << "); effective batch " << d.micro_batch() * slots << " rows = micro-batch "
          << d.micro_batch() << " x grad-accum " << o_.grad_accum << " x " << world << " ranks\n";
  }
  // Created once the inputs are known to be good: a refused resume writes
  // nothing.
  if (!o_.output_dir.empty() && lead()) LORA_RETURN_IF_ERROR(MakeDirs(o_.output_dir));
  const int64_t first_step = state_.step;
  int64_t applied = 0;        // updates applied in this run
  int64_t zero_norm_run = 0;  // consecutive steps with a zero gradient norm
  auto start = std::chrono::steady_clock::now();
  int64_t tokens_seen = 0;
  double last_loss = 0;
  data::Batch batch;
  result->stopped_early = false;

  auto evaluate = [&](int64_t at) -> Status {
    if (!eval_) return OkStatus();
    LORA_ASSIGN_OR_RETURN(EvalResult ev, Evaluate(session_, eval_, coll));
    double loss = ev.loss;
    eval_curve_.push_back({at, loss});
    char line[256];
    snprintf(line, sizeof line, "{\"step\": %lld, \"eval_loss\": %.6f, \"eval_ppl\": %.4f",
             static_cast<long long>(at), loss, std::exp(loss));
    LORA_RETURN_IF_ERROR(WriteMetrics(line + ev.rewards.JsonFields(ev.count, "eval_") + "}"));
    if (o_.progress_bar) *log_ << "\n";
    *log_ << "step " << at << ": eval loss " << loss;
    if (ev.rewards.present)
      *log_ << ", reward accuracy " << ev.rewards.accuracy / ev.count << ", margin "
            << ev.rewards.margin / ev.count << " (" << ev.count << " pairs)\n";
    else
      *log_ << " (ppl " << std::exp(loss) << ")\n";
    if (!state_.have_best || loss < state_.best_eval) {
      state_.best_eval = loss;
      state_.have_best = true;
      state_.evals_without_improvement = 0;
    } else {
      ++state_.evals_without_improvement;
    }
    return OkStatus();
  };

  while (state_.step < total) {
    double loss_sum = 0, count = 0, replay_sum = 0, replay_count = 0;
    RewardSums rewards;
    int64_t real = 0;
    // Slot g of the step's grad_accum x world micro-batches belongs to rank
    // g / grad_accum; its dropout seed depends on g, so that the ranks
    // together draw what one process accumulating all of them would.
    for (int64_t slot = 0; slot < slots; ++slot) {
      if (slot / o_.grad_accum != rank) {
        batcher_.Skip();
        continue;
      }
      const int64_t micro = slot % o_.grad_accum;
      LORA_RETURN_IF_ERROR(batcher_.Next(&batch));
      LORA_RETURN_IF_ERROR(FeedBatch(session_, programs::kTrainStep, batch));
      // A data-parallel plan starts the gradient all-reduce during the
      // backward of the step's last micro-batch only.
      if (data_parallel_plan)
        LORA_RETURN_IF_ERROR(session_->SetScalar(programs::kTrainStep, InputPort::SyncGradients,
                                                 micro + 1 == o_.grad_accum ? 1.0f : 0.0f));
      LORA_RETURN_IF_ERROR(
          session_->Run(programs::kTrainStep, StepSeed(o_.seed, state_.step, slot)), "at step %lld",
          static_cast<long long>(state_.step));
      LORA_ASSIGN_OR_RETURN(double l,
                            session_->GetScalar(programs::kTrainStep, OutputPort::LossSum));
      LORA_ASSIGN_OR_RETURN(double n, session_->GetScalar(programs::kTrainStep, OutputPort::Count));
      LORA_RETURN_IF_ERROR(rewards.Add(*session_, programs::kTrainStep));
      StatusOr<double> rs = session_->GetScalar(programs::kTrainStep, OutputPort::ReplayLossSum);
      if (rs.ok()) {
        replay_sum += *rs;
        LORA_ASSIGN_OR_RETURN(double rc,
                              session_->GetScalar(programs::kTrainStep, OutputPort::ReplayCount));
        replay_count += rc;
      }
      loss_sum += l;
      count += n;
      real += batch.real_tokens;
    }
    // The plan's optimizer sums the ranks' token counts itself
    // (lora-data-parallel's all_reduce_sum): it is fed this rank's.
    const double local_count = count;
    if (world > 1) {
      // The step's loss and counts over all ranks: every rank takes the same
      // decisions (skip, stop) from them.
      double real_tokens = static_cast<double>(real);
      LORA_RETURN_IF_ERROR(
          SumOverRanks(coll,
                       {&loss_sum, &count, &replay_sum, &replay_count, &real_tokens,
                        &rewards.chosen, &rewards.rejected, &rewards.accuracy, &rewards.margin},
                       "the step's loss and token counts"),
          "at step %lld", static_cast<long long>(state_.step));
      real = static_cast<int64_t>(real_tokens);
    }
    double loss = count > 0 ? loss_sum / count : 0.0;
    bool spike = state_.loss_count >= 10 && loss > o_.spike_factor * state_.loss_mean;
    // A skipped step: the accumulated gradients are dropped, nothing is
    // updated; too many stop the run.
    auto skip = [&](const char* why) -> Status {
      ++state_.skipped;
      char line[200];
      snprintf(line, sizeof line, "{\"step\": %lld, \"skipped\": true, \"loss\": %s}",
               static_cast<long long>(state_.step),
               std::isfinite(loss) ? std::to_string(loss).c_str() : "null");
      LORA_RETURN_IF_ERROR(WriteMetrics(line));
      *log_ << "step " << state_.step << ": skipped (" << why << ")\n";
      if (state_.skipped > o_.max_skipped)
        return InvalidArgumentError(StrFormat(
            "stopped: %lld steps skipped for a non-finite or spiking loss or gradient (max %lld); "
            "lower --lr, check the base weights and the data",
            static_cast<long long>(state_.skipped), static_cast<long long>(o_.max_skipped)));
      ++state_.step;
      return OkStatus();
    };
    if (count <= 0 || !std::isfinite(loss) || spike) {
      // The all-reduce started by the last micro-batch writes into the
      // accumulators: it ends before they are cleared.
      if (coll) LORA_RETURN_IF_ERROR(coll->WaitAll());
      LORA_RETURN_IF_ERROR(session_->ZeroGradients());
      LORA_RETURN_IF_ERROR(skip(count <= 0             ? "no target tokens"
                                : !std::isfinite(loss) ? "the loss is not finite"
                                                       : "a loss spike above the running mean"));
      continue;
    }
    double lr = ScheduledLearningRate(o_, state_.step, total);
    LORA_RETURN_IF_ERROR(session_->SetScalar(programs::kOptimizerStep, InputPort::LearningRate,
                                             static_cast<float>(lr)));
    LORA_RETURN_IF_ERROR(session_->SetScalar(programs::kOptimizerStep, InputPort::Step,
                                             static_cast<float>(state_.step + 1)));
    LORA_RETURN_IF_ERROR(session_->SetScalar(programs::kOptimizerStep, InputPort::TokenCount,
                                             static_cast<float>(local_count)));
    LORA_RETURN_IF_ERROR(session_->Run(programs::kOptimizerStep, 0));
    LORA_ASSIGN_OR_RETURN(double grad_norm,
                          session_->GetScalar(programs::kOptimizerStep, OutputPort::GradNorm));
    if (!std::isfinite(grad_norm)) {
      // A finite loss with a NaN/Inf gradient (a non-finite weight, an
      // overflow): clip_scale flagged it, adamw left every tensor as it was,
      // and the program zeroed the gradients.
      LORA_RETURN_IF_ERROR(skip("the gradient norm is not finite"));
      continue;
    }
    // A collapsed run (e.g. a learning rate so large that the logits
    // saturate): the gradient is exactly zero step after step, and nothing
    // more can be learned.
    zero_norm_run = grad_norm == 0.0 ? zero_norm_run + 1 : 0;
    if (zero_norm_run >= kCollapseSteps)
      return InvalidArgumentError(StrFormat(
          "stopped at step %lld: the gradient norm was exactly 0 for %lld steps in a row (loss "
          "%.6g): training has collapsed; lower --lr (the last checkpoint, if any, is kept)",
          static_cast<long long>(state_.step + 1), static_cast<long long>(kCollapseSteps), loss));
    ++applied;
    ++state_.step;
    state_.loss_mean += (loss - state_.loss_mean) / static_cast<double>(++state_.loss_count);
    last_loss = loss;
    tokens_seen += real;
    train_curve_.push_back({state_.step, loss});
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double tps = elapsed > 0 ? tokens_seen / elapsed : 0;
    char line[320];
    snprintf(line, sizeof line,
             "{\"step\": %lld, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g, \"tokens\": %lld, "
             "\"tokens_per_s\": %.1f, \"elapsed_s\": %.3f",
             static_cast<long long>(state_.step), loss, lr, grad_norm / std::max(count, 1.0),
             static_cast<long long>(tokens_seen), tps, elapsed);
    StatusOr<double> penalty = session_->GetScalar(programs::kTrainStep, OutputPort::EwcPenalty);
    std::string ewc = penalty.ok() ? StrFormat(", \"ewc_penalty\": %.6g", *penalty) : "";
    if (replay_count > 0)
      ewc += StrFormat(", \"replay_loss\": %.6g", replay_sum / replay_count);
    LORA_RETURN_IF_ERROR(WriteMetrics(line + rewards.JsonFields(count, "") + ewc + "}"));
    std::string reward_text =
        rewards.present ? StrFormat(", acc %.2f, margin %.3g", rewards.accuracy / count,
                                    rewards.margin / count)
                        : std::string();
    if (penalty.ok()) reward_text += StrFormat(" (ewc %.3g)", *penalty);
    if (o_.progress_bar) {
      double eta = state_.step > 0 ? elapsed / state_.step * (total - state_.step) : 0;
      int width = 24, filled = static_cast<int>(width * state_.step / total);
      *log_ << "\r[" << std::string(filled, '#') << std::string(width - filled, '.') << "] "
            << state_.step << "/" << total << " loss " << loss << reward_text << " lr " << lr << " "
            << (int)tps
            << " tok/s ETA " << FormatDuration(eta) << "   " << std::flush;
    } else if (o_.log_every > 0 && (state_.step % o_.log_every == 0 || state_.step == total)) {
      *log_ << "step " << state_.step << "/" << total << ": loss " << loss << reward_text << ", lr "
            << lr << ", "
            << static_cast<int64_t>(tps) << " tokens/s\n";
    }
    if (o_.eval_every > 0 && state_.step % o_.eval_every == 0 && state_.step < total) {
      LORA_RETURN_IF_ERROR(evaluate(state_.step));
      if (o_.patience > 0 && state_.evals_without_improvement >= o_.patience) {
        *log_ << "early stop: no improvement of the eval loss in " << o_.patience
              << " evaluations\n";
        result->stopped_early = true;
        break;
      }
    }
    if (o_.save_every > 0 && state_.step % o_.save_every == 0 && !o_.output_dir.empty() && lead())
      LORA_RETURN_IF_ERROR(SaveCheckpoint(*session_, state_, o_.seed, batcher_, o_.base_model,
                                          o_.output_dir + "/checkpoint-" +
                                              std::to_string(state_.step)));
  }
  if (o_.progress_bar) *log_ << "\n";
  if (applied == 0 && state_.step > first_step)
    return InvalidArgumentError(StrFormat(
        "no update was applied: all %lld steps were skipped (non-finite or spiking loss or "
        "gradient); nothing written; lower --lr, check the base weights and the data",
        static_cast<long long>(state_.step - first_step)));
  LORA_RETURN_IF_ERROR(evaluate(state_.step));
  if (!o_.output_dir.empty() && lead()) {
    if (session_->plan().lora())
      LORA_RETURN_IF_ERROR(SaveAdapter(*session_, o_.output_dir, o_.base_model));
    else  // full fine-tuning: the whole model
      LORA_RETURN_IF_ERROR(SaveModel(*session_, o_.output_dir, o_.base_model));
    LORA_RETURN_IF_ERROR(
        WriteFileAtomically(o_.output_dir + "/loss.svg", LossCurveSvg(train_curve_, eval_curve_)));
  }
  result->steps = state_.step;
  result->skipped = state_.skipped;
  result->final_train_loss = last_loss;
  // Only a run that evaluates reports a best evaluation (a resumed run
  // without --eval restores one from its checkpoint but does not own it).
  result->best_eval_loss = eval_ && state_.have_best ? state_.best_eval : std::nan("");
  return OkStatus();
}

bool IsDataParallel(const Plan& plan) {
  return HasInput(plan, programs::kTrainStep, InputPort::SyncGradients);
}

Status CheckRanksCanRun(const Plan& plan, int world_size) {
  if (world_size <= 1 || IsDataParallel(plan)) return OkStatus();
  return InvalidArgumentError(
      StrFormat("%d ranks, but the plan has no gradient all-reduce: compile it with lorac compile "
                "--data-parallel (each rank would otherwise train alone)",
                world_size));
}

}  // namespace lorart
