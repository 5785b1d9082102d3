#include "lorart/exec/feed.h"

namespace lorart {

bool HasInput(const Plan& plan, const std::string& program, const char* name) {
  const schema::Program* p = plan.FindProgram(program);
  if (p && p->inputs())
    for (uint32_t id : *p->inputs())
      if (plan.tensor(id).name() && plan.tensor(id).name()->str() == name) return true;
  return false;
}

Status FeedInputs(Session* s, const std::string& program,
                  std::initializer_list<InputData> inputs) {
  for (const InputData& in : inputs) {
    if (in.optional && !HasInput(s->plan(), program, in.name)) continue;
    LORA_RETURN_IF_ERROR(s->SetInput(program, in.name, in.data, in.bytes));
  }
  return OkStatus();
}

Status FeedLogitsStep(Session* s, const std::vector<int32_t>& tokens,
                      const std::vector<int32_t>& positions, const std::vector<int32_t>& segments,
                      const std::vector<int32_t>& last_index) {
  return FeedInputs(s, "logits_step",
                    {{inputs::kTokens, tokens.data(), tokens.size() * 4},
                     {inputs::kPositions, positions.data(), positions.size() * 4},
                     {inputs::kSegmentIds, segments.data(), segments.size() * 4, /*optional=*/true},
                     {inputs::kLastIndex, last_index.data(), last_index.size() * 4}});
}

}  // namespace lorart
