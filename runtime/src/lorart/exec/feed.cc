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

}  // namespace lorart
