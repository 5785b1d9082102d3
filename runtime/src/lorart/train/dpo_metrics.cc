#include "lorart/train/dpo_metrics.h"

#include <algorithm>

namespace lorart {

Status RewardSums::Add(const Session& session, const std::string& program) {
  StatusOr<double> c = session.GetScalar(program, OutputPort::ChosenRewards);
  if (!c.ok()) return c.status().code() == StatusCode::kNotFound ? OkStatus() : c.status();
  LORA_ASSIGN_OR_RETURN(double r, session.GetScalar(program, OutputPort::RejectedRewards));
  LORA_ASSIGN_OR_RETURN(double a, session.GetScalar(program, OutputPort::Accuracy));
  LORA_ASSIGN_OR_RETURN(double m, session.GetScalar(program, OutputPort::Margin));
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

}  // namespace lorart
