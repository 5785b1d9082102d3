// DPO's reward metrics: a DPO plan's programs output the summed
// chosen_rewards, rejected_rewards, accuracy and margin of their pairs; the
// trainer and the evaluation sum them over micro-batches and report them
// per pair.
#ifndef LORART_TRAIN_DPO_METRICS_H_
#define LORART_TRAIN_DPO_METRICS_H_

#include <string>

#include "lorart/base/status.h"
#include "lorart/exec/session.h"

namespace lorart {

// A plan's chosen_rewards, rejected_rewards, accuracy and margin outputs,
// summed over micro-batches; absent for other objectives.
struct RewardSums {
  bool present = false;
  double chosen = 0, rejected = 0, accuracy = 0, margin = 0;
  // Adds `program`'s outputs after a run (nothing when it has none).
  Status Add(const Session& session, const std::string& program);
  // `, "<prefix>rewards/chosen": ..., ...` per pair, or "" when absent.
  std::string JsonFields(double pairs, const char* prefix) const;
};

}  // namespace lorart

#endif  // LORART_TRAIN_DPO_METRICS_H_
