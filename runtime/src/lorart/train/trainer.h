// The trainer: runs a plan's programs over a dataset. Per optimizer step it
// runs @train_step on `grad_accum` micro-batches (the plan accumulates their
// gradients), then @optimizer_step with the scheduled learning rate and the
// number of target tokens of the whole accumulated batch. It evaluates,
// stops early, skips steps whose loss is not finite or spikes, writes
// checkpoints atomically and resumes from them bit for bit.
#ifndef LORART_TRAIN_TRAINER_H_
#define LORART_TRAIN_TRAINER_H_

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "lorart/base/status.h"
#include "lorart/data/dataset.h"
#include "lorart/exec/session.h"

namespace lorart {

struct TrainOptions {
  int64_t steps = 0;   // optimizer steps; 0: from epochs
  double epochs = 1;   // used when steps == 0
  int64_t grad_accum = 1;
  double lr = 2e-4, min_lr = 0.0;
  int64_t warmup_steps = 0;
  std::string schedule = "cosine";  // cosine, linear, constant
  uint64_t seed = 0;
  int64_t eval_every = 0;   // 0: only at the end (when there is an eval set)
  int64_t patience = 0;     // evaluations without improvement before stopping; 0: never
  int64_t save_every = 0;   // 0: only the final adapter
  double spike_factor = 5.0;  // skip a step whose loss exceeds this x the running mean
  int64_t max_skipped = 10;   // stop after this many skipped steps
  std::string output_dir;     // adapter, checkpoints, metrics.jsonl, loss.svg
  std::string resume_dir;     // a checkpoint directory to continue from
  std::string base_model;     // recorded in adapter_config.json
  bool progress_bar = false;  // a one-line live bar (terminal) instead of log lines
  int64_t log_every = 1;
};

// The learning rate at optimizer step `step` (0-based) of `total`: linear
// warmup from 0, then cosine/linear decay to min_lr, or constant.
double ScheduledLearningRate(const TrainOptions& o, int64_t step, int64_t total);

struct TrainResult {
  int64_t steps = 0;
  int64_t skipped = 0;
  double final_train_loss = 0;
  double best_eval_loss = 0;   // NaN when there was no evaluation
  bool stopped_early = false;
};

// DPO's reward metrics (a plan's chosen_rewards, rejected_rewards, accuracy
// and margin outputs), summed over micro-batches; absent for other
// objectives.
struct RewardSums {
  bool present = false;
  double chosen = 0, rejected = 0, accuracy = 0, margin = 0;
  // Adds `program`'s outputs after a run (nothing when it has none).
  Status Add(const Session& session, const std::string& program);
  // `, "<prefix>rewards/chosen": ..., ...` per pair, or "" when absent.
  std::string JsonFields(double pairs, const char* prefix) const;
};

struct EvalResult {
  double loss = 0;       // per target token, or per pair for DPO
  double count = 0;      // target tokens, or pairs
  RewardSums rewards;
};

// lorart fisher: the diagonal empirical Fisher of every linear layer's
// weight on a reference data set — the mean over micro-batches of the
// squared gradient of the batch's mean loss — from a plan that computes
// those gradients (full fine-tuning), written to `out_path` (safetensors,
// float32, one tensor per weight name) for a plan with --ewc-lambda.
Status EstimateFisher(Session* session, data::Dataset* dataset, int64_t max_batches,
                      const std::string& out_path, std::ostream* log);

class Trainer {
 public:
  Trainer(Session* session, data::Dataset* train, data::Dataset* eval, TrainOptions options,
          std::ostream* log);
  Status Run(TrainResult* result);

  // Mean loss per target token (per pair for DPO) of @eval_step over a
  // whole dataset, with DPO's reward metrics.
  static StatusOr<EvalResult> Evaluate(Session* session, data::Dataset* dataset);

 private:
  Status SaveCheckpoint(int64_t step, const std::string& dir);
  Status WriteCheckpointFiles(int64_t step, const std::string& tmp, const std::string& dir);
  Status LoadCheckpoint(const std::string& dir);
  Status WriteMetrics(const std::string& line);

  Session* session_;
  data::Dataset* train_;
  data::Dataset* eval_;
  TrainOptions o_;
  std::ostream* log_;
  data::Batcher batcher_;
  // Trainer state saved in checkpoints.
  int64_t step_ = 0;
  int64_t skipped_ = 0;
  double loss_mean_ = 0;  // running mean of accepted step losses
  int64_t loss_count_ = 0;
  double best_eval_ = 0;
  int64_t evals_without_improvement_ = 0;
  bool have_best_ = false;
  std::vector<std::pair<int64_t, double>> train_curve_, eval_curve_;
};

// Feeds a data batch to a program's inputs (segment_ids only when the plan
// has them: unpacked plans do not).
Status FeedBatch(Session* session, const std::string& program, const data::Batch& batch);

// An SVG line chart of training (and evaluation) loss per step.
std::string LossCurveSvg(const std::vector<std::pair<int64_t, double>>& train,
                         const std::vector<std::pair<int64_t, double>>& eval);

}  // namespace lorart

#endif  // LORART_TRAIN_TRAINER_H_
