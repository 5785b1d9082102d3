// The trainer: runs a plan's programs over a dataset. Per optimizer step it
// runs @train_step on `grad_accum` micro-batches (the plan accumulates their
// gradients), then @optimizer_step with the scheduled learning rate and the
// number of target tokens of the whole accumulated batch. It evaluates,
// stops early, skips steps whose loss is not finite or spikes, writes
// checkpoints atomically and resumes from them bit for bit.
//
// Beside it: checkpoint.h (checkpoint files), dpo_metrics.h (DPO's reward
// metrics), plot.h (the loss curve), fisher.h (lorart fisher).
#ifndef LORART_TRAIN_TRAINER_H_
#define LORART_TRAIN_TRAINER_H_

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "lorart/base/status.h"
#include "lorart/data/dataset.h"
#include "lorart/dist/collective.h"
#include "lorart/exec/session.h"
#include "lorart/train/checkpoint.h"
#include "lorart/train/dpo_metrics.h"

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
  // Data parallelism (docs/distributed.md): the run's ranks, or null for one
  // process. Each optimizer step takes grad_accum x world_size micro-batches
  // of the data; rank r runs micro-batches r*grad_accum .. (r+1)*grad_accum-1
  // of them, the plan sums the gradients and token counts, and only rank 0
  // writes metrics, checkpoints and the adapter. Must outlive the trainer.
  dist::Collective* collective = nullptr;
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

struct EvalResult {
  double loss = 0;       // per target token, or per pair for DPO
  double count = 0;      // target tokens, or pairs
  RewardSums rewards;
};

class Trainer {
 public:
  Trainer(Session* session, data::Dataset* train, data::Dataset* eval, TrainOptions options,
          std::ostream* log);
  Status Run(TrainResult* result);

  // Mean loss per target token (per pair for DPO) of @eval_step over a
  // whole dataset, with DPO's reward metrics. With `collective`, each rank
  // evaluates every world_size-th batch and the sums are added over the
  // ranks (every rank gets the same result).
  static StatusOr<EvalResult> Evaluate(Session* session, data::Dataset* dataset,
                                       dist::Collective* collective = nullptr);

 private:
  Status WriteMetrics(const std::string& line);
  // Data parallelism: the ranks agree on the run (options, data, initial
  // trainable tensors); an error names the first difference.
  Status CheckRanksAgree(int64_t total);
  bool lead() const { return !o_.collective || o_.collective->rank() == 0; }

  Session* session_;
  data::Dataset* train_;
  data::Dataset* eval_;
  TrainOptions o_;
  std::ostream* log_;
  data::Batcher batcher_;
  TrainerState state_;  // saved in checkpoints
  std::vector<std::pair<int64_t, double>> train_curve_, eval_curve_;
};

// Whether `plan` sums its gradients over the ranks (lorac compile
// --data-parallel). More than one rank with a plan that does not is an
// error: each rank would train alone.
bool IsDataParallel(const Plan& plan);
Status CheckRanksCanRun(const Plan& plan, int world_size);

// Feeds a data batch to a program's inputs (segment_ids only when the plan
// has them: unpacked plans do not).
Status FeedBatch(Session* session, const std::string& program, const data::Batch& batch);

}  // namespace lorart

#endif  // LORART_TRAIN_TRAINER_H_
