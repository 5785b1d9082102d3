#include "lorart/train/trainer.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "lorart/exec/feed.h"
#include "lorart/io/files.h"
#include "lorart/io/json.h"
#include "lorart/io/mapped_file.h"
#include "lorart/io/safetensors.h"
#include "lorart/io/safetensors_write.h"

namespace lorart {

namespace {

constexpr double kPi = 3.14159265358979323846;

uint64_t StepSeed(uint64_t seed, int64_t step, int64_t micro) {
  uint64_t z = seed ^ (static_cast<uint64_t>(step) * 0x9E3779B97F4A7C15ull) ^
               (static_cast<uint64_t>(micro) * 0xD1B54A32D192ED03ull);
  z ^= z >> 31;
  z *= 0x7FB5D329728EA185ull;
  z ^= z >> 27;
  return z | 1;  // never 0
}

lorart::DType ToFileDType(schema::DType d) {
  switch (d) {
    case schema::DType::F32: return lorart::DType::kF32;
    case schema::DType::BF16: return lorart::DType::kBF16;
    case schema::DType::F16: return lorart::DType::kF16;
    case schema::DType::I32: return lorart::DType::kI32;
    case schema::DType::I64: return lorart::DType::kI64;
    default: return lorart::DType::kU8;
  }
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
      {{inputs::kTokens, b.tokens.data(), b.tokens.size() * 4},
       {inputs::kPositions, b.positions.data(), b.positions.size() * 4},
       {inputs::kSegmentIds, b.segment_ids.data(), b.segment_ids.size() * 4, /*optional=*/true},
       {inputs::kTargets, b.targets.data(), b.targets.size() * 4},
       {inputs::kLossMask, b.loss_mask.data(), b.loss_mask.size()}}));
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
  if (!HasInput(s->plan(), program, inputs::kReplayMask) &&
      std::count(b.replay_mask.begin(), b.replay_mask.end(), 1) > 0)
    return InvalidArgumentError("the batches hold replayed text but the DPO plan has no "
                                "replay loss: compile it with --dpo-replay-weight");
  return FeedInputs(
      s, program,
      {{inputs::kSequenceIds, b.sequence_ids.data(), b.sequence_ids.size() * 4},
       {inputs::kPairMask, b.pair_mask.data(), b.pair_mask.size()},
       {inputs::kReplayMask, b.replay_mask.data(), b.replay_mask.size(), /*optional=*/true}});
}


Status RewardSums::Add(const Session& session, const std::string& program) {
  StatusOr<double> c = session.GetScalar(program, "chosen_rewards");
  if (!c.ok()) return c.status().code() == StatusCode::kNotFound ? OkStatus() : c.status();
  LORA_ASSIGN_OR_RETURN(double r, session.GetScalar(program, "rejected_rewards"));
  LORA_ASSIGN_OR_RETURN(double a, session.GetScalar(program, "accuracy"));
  LORA_ASSIGN_OR_RETURN(double m, session.GetScalar(program, "margin"));
  present = true;
  chosen += *c;
  rejected += r;
  accuracy += a;
  margin += m;
  return OkStatus();
}

std::string RewardSums::JsonFields(double pairs, const char* prefix) const {
  if (!present) return "";
  double n = std::max(pairs, 1.0);
  return StrFormat(", \"%srewards/chosen\": %.6g, \"%srewards/rejected\": %.6g, "
                   "\"%srewards/accuracy\": %.4f, \"%srewards/margin\": %.6g",
                   prefix, chosen / n, prefix, rejected / n, prefix, accuracy / n, prefix,
                   margin / n);
}


Trainer::Trainer(Session* session, data::Dataset* train, data::Dataset* eval,
                 TrainOptions options, std::ostream* log)
    : session_(session), train_(train), eval_(eval), o_(std::move(options)), log_(log),
      batcher_(train) {}

StatusOr<EvalResult> Trainer::Evaluate(Session* session, data::Dataset* dataset) {
  double loss = 0;
  double count = 0;
  EvalResult result;
  data::Batch batch;
  for (int64_t i = 0; i < dataset->batches_per_epoch(); ++i) {
    LORA_RETURN_IF_ERROR(dataset->GetBatch(0, i, &batch));
    LORA_RETURN_IF_ERROR(FeedBatch(session, "eval_step", batch));
    LORA_RETURN_IF_ERROR(session->Run("eval_step", 0));
    LORA_ASSIGN_OR_RETURN(double l, session->GetScalar("eval_step", "loss_sum"));
    LORA_ASSIGN_OR_RETURN(double n, session->GetScalar("eval_step", "count"));
    LORA_RETURN_IF_ERROR(result.rewards.Add(*session, "eval_step"));
    // An EWC plan's loss includes its penalty (once per token); the
    // evaluation reports the data's loss alone.
    StatusOr<double> penalty = session->GetScalar("eval_step", "ewc_penalty");
    if (penalty.ok()) l -= *penalty * n;
    loss += l;
    count += n;
  }
  if (count <= 0) return InvalidArgumentError("the evaluation set has no target tokens");
  result.loss = loss / count;
  result.count = count;
  return result;
}

Status EstimateFisher(Session* session, data::Dataset* dataset, int64_t max_batches,
                      const std::string& out_path, std::ostream* log) {
  // The linear layers' weights whose gradients the plan computes.
  std::vector<std::string> names;
  std::map<std::string, std::vector<int64_t>> shapes;
  {
    LORA_ASSIGN_OR_RETURN(std::vector<Session::StateTensor> state, session->State());
    for (const Session::StateTensor& t : state) {
      if (t.role != schema::Role::Gradient || t.shape.size() != 2) continue;
      const std::string& w = t.of;
      // A base model's linear layer (not an adapter's A or B).
      if (w.find("layers.") == std::string::npos || w.find(".lora_") != std::string::npos ||
          w.rfind("base_model.", 0) == 0 || w.size() < 7 ||
          w.compare(w.size() - 7, 7, ".weight") != 0)
        continue;
      names.push_back(w);
      shapes[w] = t.shape;
    }
  }
  if (names.empty())
    return InvalidArgumentError(session->plan().path() + ": the plan computes no gradient of the "
                                                         "linear layers' weights: compile it with "
                                                         "--no-lora --train full");
  int64_t batches = dataset->batches_per_epoch();
  if (max_batches > 0) batches = std::min(batches, max_batches);
  std::map<std::string, std::vector<double>> fisher;
  for (const std::string& n : names)
    fisher[n].assign(static_cast<size_t>(shapes[n][0] * shapes[n][1]), 0.0);
  data::Batch batch;
  int64_t used = 0, tokens = 0;
  for (int64_t i = 0; i < batches; ++i) {
    LORA_RETURN_IF_ERROR(dataset->GetBatch(0, i, &batch));
    LORA_RETURN_IF_ERROR(session->ZeroGradients());
    LORA_RETURN_IF_ERROR(FeedBatch(session, "train_step", batch));
    LORA_RETURN_IF_ERROR(session->Run("train_step", 0), "fisher batch %lld",
                         static_cast<long long>(i));
    LORA_ASSIGN_OR_RETURN(double count, session->GetScalar("train_step", "count"));
    if (count <= 0) continue;
    LORA_ASSIGN_OR_RETURN(std::vector<Session::StateTensor> state, session->State());
    for (const Session::StateTensor& t : state) {
      if (t.role != schema::Role::Gradient) continue;
      auto it = fisher.find(t.of);
      if (it == fisher.end()) continue;
      const float* g = reinterpret_cast<const float*>(t.data);
      for (size_t e = 0; e < it->second.size(); ++e) {
        double d = double(g[e]) / count;  // the gradient of the batch's mean loss
        it->second[e] += d * d;
      }
    }
    ++used;
    tokens += static_cast<int64_t>(count);
  }
  if (used == 0) return InvalidArgumentError("the reference data has no target tokens");
  std::vector<std::vector<float>> data;
  std::vector<TensorToWrite> tensors;
  double total = 0;
  size_t elements = 0;
  for (const std::string& n : names) {
    std::vector<float> f(fisher[n].size());
    for (size_t e = 0; e < f.size(); ++e) {
      f[e] = static_cast<float>(fisher[n][e] / double(used));
      total += f[e];
    }
    elements += f.size();
    data.push_back(std::move(f));
    tensors.push_back({n, DType::kF32, shapes[n], data.back().data()});
  }
  LORA_RETURN_IF_ERROR(WriteSafetensors(out_path, tensors,
                                        {{"format", "pt"},
                                         {"lorac.fisher_batches", std::to_string(used)},
                                         {"lorac.fisher_tokens", std::to_string(tokens)},
                                         {"lorac.fisher_data", dataset->stats().path}}));
  *log << StrFormat("fisher: %zu weights from %lld batches (%lld target tokens of %s), mean %.4g; "
                    "wrote %s\n",
                    names.size(), static_cast<long long>(used), static_cast<long long>(tokens),
                    dataset->stats().path.c_str(), total / double(std::max<size_t>(1, elements)),
                    out_path.c_str());
  return OkStatus();
}

Status Trainer::WriteMetrics(const std::string& line) {
  if (o_.output_dir.empty()) return OkStatus();
  std::ofstream out(o_.output_dir + "/metrics.jsonl", std::ios::app);
  out << line << "\n";
  if (!out) return UnavailableError(o_.output_dir + "/metrics.jsonl: write failed");
  return OkStatus();
}

Status Trainer::SaveCheckpoint(int64_t step, const std::string& dir) {
  // Written into a temporary directory renamed into place: a checkpoint is
  // either complete or absent (a failed one, e.g. on a full disk, is removed).
  std::string tmp = dir + ".tmp";
  Status st = WriteCheckpointFiles(step, tmp, dir);
  if (!st.ok()) (void)RemoveTree(tmp);
  return st;
}

Status Trainer::WriteCheckpointFiles(int64_t step, const std::string& tmp,
                                     const std::string& dir) {
  LORA_RETURN_IF_ERROR(RemoveTree(tmp));
  LORA_RETURN_IF_ERROR(MakeDirs(tmp));
  std::vector<TensorToWrite> tensors;
  LORA_ASSIGN_OR_RETURN(std::vector<Session::StateTensor> state_tensors, session_->State());
  for (const Session::StateTensor& t : state_tensors)
    tensors.push_back({t.name, ToFileDType(t.dtype), t.shape, t.data});
  LORA_RETURN_IF_ERROR(WriteSafetensors(tmp + "/state.safetensors", tensors));
  Json state = {{"step", step},
                {"skipped", skipped_},
                {"loss_mean", loss_mean_},
                {"loss_count", loss_count_},
                {"best_eval", best_eval_},
                {"have_best", have_best_},
                {"evals_without_improvement", evals_without_improvement_},
                {"seed", o_.seed},
                {"data", batcher_.SaveState()}};
  LORA_RETURN_IF_ERROR(WriteFileAtomically(tmp + "/trainer.json", state.dump(2) + "\n"));
  if (session_->plan().lora())
    LORA_RETURN_IF_ERROR(session_->SaveAdapter(tmp, o_.base_model));
  LORA_RETURN_IF_ERROR(RemoveTree(dir));
  if (std::rename(tmp.c_str(), dir.c_str()) != 0)
    return UnavailableError(StrFormat("%s: cannot rename to %s: %s", tmp.c_str(), dir.c_str(),
                                      std::strerror(errno)));
  return OkStatus();
}

Status Trainer::LoadCheckpoint(const std::string& dir) {
  std::ifstream in(dir + "/trainer.json");
  if (!in) return NotFoundError(dir + "/trainer.json: no such checkpoint");
  std::stringstream ss;
  ss << in.rdbuf();
  Json state;
  LORA_RETURN_IF_ERROR(ParseJson(ss.str(), dir + "/trainer.json", "checkpoint", &state));
  if (state.value("seed", uint64_t{0}) != o_.seed)
    return InvalidArgumentError(StrFormat("%s: the checkpoint was made with --seed %llu, this "
                                          "run has --seed %llu",
                                          dir.c_str(),
                                          static_cast<unsigned long long>(state.value("seed", uint64_t{0})),
                                          static_cast<unsigned long long>(o_.seed)));
  std::string path = dir + "/state.safetensors";
  SafetensorsHeader header;
  LORA_RETURN_IF_ERROR(ReadSafetensorsHeader(path, &header));
  MappedFile file;
  LORA_RETURN_IF_ERROR(file.Open(path));
  LORA_ASSIGN_OR_RETURN(std::vector<Session::StateTensor> state_tensors, session_->State());
  for (const Session::StateTensor& t : state_tensors) {
    const TensorInfo* info = header.Find(t.name);
    if (!info)
      return NotFoundError(StrFormat("%s: no tensor '%s': the checkpoint belongs to another plan",
                                     path.c_str(), t.name.c_str()));
    if (info->end - info->begin != t.bytes)
      return InvalidArgumentError(StrFormat("%s: tensor '%s' has %llu bytes, the plan needs %llu",
                                            path.c_str(), t.name.c_str(),
                                            static_cast<unsigned long long>(info->end - info->begin),
                                            static_cast<unsigned long long>(t.bytes)));
    LORA_RETURN_IF_ERROR(session_->SetState(t.name, file.data() + header.DataOffset() + info->begin,
                                            t.bytes));
  }
  step_ = state.value("step", int64_t{0});
  skipped_ = state.value("skipped", int64_t{0});
  loss_mean_ = state.value("loss_mean", 0.0);
  loss_count_ = state.value("loss_count", int64_t{0});
  best_eval_ = state.value("best_eval", 0.0);
  have_best_ = state.value("have_best", false);
  evals_without_improvement_ = state.value("evals_without_improvement", int64_t{0});
  if (!state.contains("data")) return InvalidArgumentError(dir + "/trainer.json: no data state");
  return batcher_.RestoreState(state["data"]);
}

Status Trainer::Run(TrainResult* result) {
  const int64_t per_epoch = train_->batches_per_epoch();
  if (per_epoch <= 0) return InvalidArgumentError("the training set produced no batch");
  int64_t total = o_.steps > 0 ? o_.steps
                               : std::max<int64_t>(1, static_cast<int64_t>(std::ceil(
                                                          o_.epochs * per_epoch / o_.grad_accum)));
  if (!o_.output_dir.empty()) LORA_RETURN_IF_ERROR(MakeDirs(o_.output_dir));
  if (!o_.resume_dir.empty()) {
    LORA_RETURN_IF_ERROR(LoadCheckpoint(o_.resume_dir), "while resuming from %s",
                         o_.resume_dir.c_str());
    *log_ << "resumed from " << o_.resume_dir << " at step " << step_ << "\n";
  }
  auto start = std::chrono::steady_clock::now();
  int64_t tokens_seen = 0;
  double last_loss = 0;
  data::Batch batch;
  result->stopped_early = false;

  auto evaluate = [&](int64_t at) -> Status {
    if (!eval_) return OkStatus();
    LORA_ASSIGN_OR_RETURN(EvalResult ev, Evaluate(session_, eval_));
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
    if (!have_best_ || loss < best_eval_) {
      best_eval_ = loss;
      have_best_ = true;
      evals_without_improvement_ = 0;
    } else {
      ++evals_without_improvement_;
    }
    return OkStatus();
  };

  while (step_ < total) {
    double loss_sum = 0, count = 0, replay_sum = 0, replay_count = 0;
    RewardSums rewards;
    int64_t real = 0;
    for (int64_t micro = 0; micro < o_.grad_accum; ++micro) {
      LORA_RETURN_IF_ERROR(batcher_.Next(&batch));
      LORA_RETURN_IF_ERROR(FeedBatch(session_, "train_step", batch));
      LORA_RETURN_IF_ERROR(session_->Run("train_step", StepSeed(o_.seed, step_, micro)),
                           "at step %lld", static_cast<long long>(step_));
      LORA_ASSIGN_OR_RETURN(double l, session_->GetScalar("train_step", "loss_sum"));
      LORA_ASSIGN_OR_RETURN(double n, session_->GetScalar("train_step", "count"));
      LORA_RETURN_IF_ERROR(rewards.Add(*session_, "train_step"));
      StatusOr<double> rs = session_->GetScalar("train_step", "replay_loss_sum");
      if (rs.ok()) {
        replay_sum += *rs;
        LORA_ASSIGN_OR_RETURN(double rc, session_->GetScalar("train_step", "replay_count"));
        replay_count += rc;
      }
      loss_sum += l;
      count += n;
      real += batch.real_tokens;
    }
    double loss = count > 0 ? loss_sum / count : 0.0;
    bool spike = loss_count_ >= 10 && loss > o_.spike_factor * loss_mean_;
    if (count <= 0 || !std::isfinite(loss) || spike) {
      // Skipped: the accumulated gradients are dropped, nothing is updated.
      LORA_RETURN_IF_ERROR(session_->ZeroGradients());
      ++skipped_;
      char line[200];
      snprintf(line, sizeof line, "{\"step\": %lld, \"skipped\": true, \"loss\": %s}",
               static_cast<long long>(step_), std::isfinite(loss) ? std::to_string(loss).c_str() : "null");
      LORA_RETURN_IF_ERROR(WriteMetrics(line));
      *log_ << "step " << step_ << ": skipped (loss " << loss
            << (spike ? ", a spike above the running mean" : "") << ")\n";
      if (skipped_ > o_.max_skipped)
        return InvalidArgumentError(StrFormat(
            "stopped: %lld steps skipped for non-finite or spiking loss (max %lld); lower --lr",
            static_cast<long long>(skipped_), static_cast<long long>(o_.max_skipped)));
      ++step_;
      continue;
    }
    double lr = ScheduledLearningRate(o_, step_, total);
    LORA_RETURN_IF_ERROR(session_->SetScalar("optimizer_step", "learning_rate", static_cast<float>(lr)));
    LORA_RETURN_IF_ERROR(session_->SetScalar("optimizer_step", "step", static_cast<float>(step_ + 1)));
    LORA_RETURN_IF_ERROR(session_->SetScalar("optimizer_step", "token_count", static_cast<float>(count)));
    LORA_RETURN_IF_ERROR(session_->Run("optimizer_step", 0));
    LORA_ASSIGN_OR_RETURN(double grad_norm, session_->GetScalar("optimizer_step", "grad_norm"));
    ++step_;
    loss_mean_ += (loss - loss_mean_) / static_cast<double>(++loss_count_);
    last_loss = loss;
    tokens_seen += real;
    train_curve_.push_back({step_, loss});
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double tps = elapsed > 0 ? tokens_seen / elapsed : 0;
    char line[320];
    snprintf(line, sizeof line,
             "{\"step\": %lld, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g, \"tokens\": %lld, "
             "\"tokens_per_s\": %.1f, \"elapsed_s\": %.3f",
             static_cast<long long>(step_), loss, lr, grad_norm / std::max(count, 1.0),
             static_cast<long long>(tokens_seen), tps, elapsed);
    StatusOr<double> penalty = session_->GetScalar("train_step", "ewc_penalty");
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
      double eta = step_ > 0 ? elapsed / step_ * (total - step_) : 0;
      int width = 24, filled = static_cast<int>(width * step_ / total);
      *log_ << "\r[" << std::string(filled, '#') << std::string(width - filled, '.') << "] "
            << step_ << "/" << total << " loss " << loss << reward_text << " lr " << lr << " "
            << (int)tps
            << " tok/s ETA " << FormatDuration(eta) << "   " << std::flush;
    } else if (o_.log_every > 0 && (step_ % o_.log_every == 0 || step_ == total)) {
      *log_ << "step " << step_ << "/" << total << ": loss " << loss << reward_text << ", lr "
            << lr << ", "
            << static_cast<int64_t>(tps) << " tokens/s\n";
    }
    if (o_.eval_every > 0 && step_ % o_.eval_every == 0 && step_ < total) {
      LORA_RETURN_IF_ERROR(evaluate(step_));
      if (o_.patience > 0 && evals_without_improvement_ >= o_.patience) {
        *log_ << "early stop: no improvement of the eval loss in " << o_.patience
              << " evaluations\n";
        result->stopped_early = true;
        break;
      }
    }
    if (o_.save_every > 0 && step_ % o_.save_every == 0 && !o_.output_dir.empty())
      LORA_RETURN_IF_ERROR(SaveCheckpoint(step_, o_.output_dir + "/checkpoint-" +
                                                     std::to_string(step_)));
  }
  if (o_.progress_bar) *log_ << "\n";
  LORA_RETURN_IF_ERROR(evaluate(step_));
  if (!o_.output_dir.empty()) {
    if (session_->plan().lora())
      LORA_RETURN_IF_ERROR(session_->SaveAdapter(o_.output_dir, o_.base_model));
    else  // full fine-tuning: the whole model
      LORA_RETURN_IF_ERROR(session_->SaveModel(o_.output_dir, o_.base_model));
    LORA_RETURN_IF_ERROR(
        WriteFileAtomically(o_.output_dir + "/loss.svg", LossCurveSvg(train_curve_, eval_curve_)));
  }
  result->steps = step_;
  result->skipped = skipped_;
  result->final_train_loss = last_loss;
  // Only a run that evaluates reports a best evaluation (a resumed run
  // without --eval restores one from its checkpoint but does not own it).
  result->best_eval_loss = eval_ && have_best_ ? best_eval_ : std::nan("");
  return OkStatus();
}

std::string LossCurveSvg(const std::vector<std::pair<int64_t, double>>& train,
                         const std::vector<std::pair<int64_t, double>>& eval) {
  const double W = 640, H = 360, L = 60, R = 20, T = 20, B = 40;
  double xmax = 1, ymin = 1e300, ymax = -1e300;
  for (auto* curve : {&train, &eval})
    for (auto [x, y] : *curve) {
      xmax = std::max(xmax, static_cast<double>(x));
      ymin = std::min(ymin, y);
      ymax = std::max(ymax, y);
    }
  if (ymin > ymax) ymin = 0, ymax = 1;
  if (ymax - ymin < 1e-9) ymax = ymin + 1;
  auto px = [&](double x) { return L + (W - L - R) * x / xmax; };
  auto py = [&](double y) { return T + (H - T - B) * (1 - (y - ymin) / (ymax - ymin)); };
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<line x1=\"" << L << "\" y1=\"" << H - B << "\" x2=\"" << W - R << "\" y2=\"" << H - B
    << "\" stroke=\"black\"/>\n<line x1=\"" << L << "\" y1=\"" << T << "\" x2=\"" << L
    << "\" y2=\"" << H - B << "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 4; ++i) {
    double y = ymin + (ymax - ymin) * i / 4;
    s << "<text x=\"" << L - 6 << "\" y=\"" << py(y) + 4 << "\" text-anchor=\"end\">"
      << std::to_string(y).substr(0, 5) << "</text>\n";
  }
  s << "<text x=\"" << (W + L) / 2 << "\" y=\"" << H - 8 << "\" text-anchor=\"middle\">step (max "
    << static_cast<int64_t>(xmax) << ")</text>\n";
  auto poly = [&](const std::vector<std::pair<int64_t, double>>& c, const char* color) {
    if (c.empty()) return;
    s << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"1.5\" points=\"";
    for (auto [x, y] : c) s << px(static_cast<double>(x)) << "," << py(y) << " ";
    s << "\"/>\n";
  };
  poly(train, "#1f77b4");
  poly(eval, "#d62728");
  s << "<text x=\"" << W - R - 150 << "\" y=\"" << T + 12 << "\" fill=\"#1f77b4\">train loss</text>\n";
  if (!eval.empty())
    s << "<text x=\"" << W - R - 150 << "\" y=\"" << T + 28 << "\" fill=\"#d62728\">eval loss</text>\n";
  s << "</svg>\n";
  return s.str();
}

}  // namespace lorart
