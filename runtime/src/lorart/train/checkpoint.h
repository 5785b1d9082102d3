// Training checkpoints: DIR/state.safetensors (every non-frozen persistent
// tensor of the session: adapters or weights, masters, moments, gradient
// accumulators), DIR/trainer.json (the trainer's counters, the seed and the
// data position) and, for a LoRA plan, the adapter files. A checkpoint is
// written into DIR.tmp and renamed into place, so it is either complete or
// absent; resuming from one continues a run bit for bit, on any device.
#ifndef LORART_TRAIN_CHECKPOINT_H_
#define LORART_TRAIN_CHECKPOINT_H_

#include <cstdint>
#include <string>

#include "lorart/base/status.h"
#include "lorart/data/dataset.h"
#include "lorart/exec/session.h"

namespace lorart {

// The trainer's counters, saved in trainer.json.
struct TrainerState {
  int64_t step = 0;
  int64_t skipped = 0;
  double loss_mean = 0;  // running mean of accepted step losses
  int64_t loss_count = 0;
  double best_eval = 0;
  int64_t evals_without_improvement = 0;
  bool have_best = false;
};

// Writes checkpoint DIR of `session` at `state` with the run's `seed` and
// the batcher's position (`base_model` goes into the adapter's config). A
// failure (a full disk) removes DIR.tmp and leaves DIR as it was.
Status SaveCheckpoint(const Session& session, const TrainerState& state, uint64_t seed,
                      const data::Batcher& batcher, const std::string& base_model,
                      const std::string& dir);

// Restores checkpoint DIR into `session`, `state` and `batcher`. The
// checkpoint must have been made with `seed` and the session's plan.
Status LoadCheckpoint(const std::string& dir, uint64_t seed, Session* session,
                      TrainerState* state, data::Batcher* batcher);

}  // namespace lorart

#endif  // LORART_TRAIN_CHECKPOINT_H_
