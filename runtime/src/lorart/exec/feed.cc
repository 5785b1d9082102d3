#include "lorart/exec/feed.h"

namespace lorart {

bool HasInput(const Plan& plan, const std::string& program, schema::InputPort port) {
  return plan.FindInput(program, port) >= 0;
}

Status FeedInputs(Session* s, const std::string& program,
                  std::initializer_list<InputData> inputs) {
  for (const InputData& in : inputs) {
    if (in.optional && !HasInput(s->plan(), program, in.port)) continue;
    LORA_RETURN_IF_ERROR(s->SetInput(program, in.port, in.data, in.bytes));
  }
  return OkStatus();
}

Status FeedLogitsStep(Session* s, const std::vector<int32_t>& tokens,
                      const std::vector<int32_t>& positions, const std::vector<int32_t>& segments,
                      const std::vector<int32_t>& last_index) {
  using P = schema::InputPort;
  return FeedInputs(s, programs::kLogitsStep,
                    {{P::Tokens, tokens.data(), tokens.size() * 4},
                     {P::Positions, positions.data(), positions.size() * 4},
                     {P::SegmentIds, segments.data(), segments.size() * 4, /*optional=*/true},
                     {P::LastIndex, last_index.data(), last_index.size() * 4}});
}

}  // namespace lorart
