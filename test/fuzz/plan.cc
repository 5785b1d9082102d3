// Fuzz target: the train.bin loader (plan/plan.h): FlatBuffers verifier, then
// every cross-check of the validator. Random bytes rarely get past the
// checksum trailer, so the input is the plan's FlatBuffer (size prefix
// included, no trailer) and the target seals it (plan/seal.h) before parsing:
// the fuzzer explores the structure, not XXH3. The raw input is parsed too
// (the trailer path). A plan that loads must be safe to walk, as
// docs/train-bin.md promises: the walk reads every id, offset and size the
// executors follow, and the memory check runs on it.
#include <string>
#include <string_view>

#include "fuzz_target.h"
#include "lorart/plan/plan.h"
#include "lorart/plan/ports.h"
#include "lorart/plan/seal.h"

namespace {

void Walk(const lorart::Plan& plan) {
  namespace schema = lorart::schema;
  const uint64_t arena = plan.arena().size();
  for (uint32_t id = 0; id < plan.num_tensors(); ++id) {
    const schema::Tensor& t = plan.tensor(id);
    if (t.storage() == schema::Storage::Arena) {
      FUZZ_CHECK(t.buffer() != nullptr);
      FUZZ_CHECK(t.buffer()->size() <= arena && t.buffer()->offset() <= arena - t.buffer()->size());
      FUZZ_CHECK(plan.tensor_bytes(id) <= t.buffer()->size());
    }
    (void)lorart::PlanShapeToString(t.shape());
    if (t.name()) (void)plan.FindParameter(t.name()->string_view());
  }
  for (uint32_t k = 0; k < plan.num_kernels(); ++k) (void)plan.kernel(k).kind();
  for (uint32_t p = 0; p < plan.num_programs(); ++p) {
    const schema::Program& program = plan.program(p);
    FUZZ_CHECK(plan.FindProgram(program.name()->string_view()) == &program);
    if (program.launches()) {
      for (const schema::Launch* launch : *program.launches()) {
        FUZZ_CHECK(launch->kernel() < plan.num_kernels());
        for (auto* ids : {launch->inputs(), launch->outputs()}) {
          if (!ids) continue;
          for (uint32_t id : *ids) FUZZ_CHECK(id < plan.num_tensors());
        }
      }
    }
    for (schema::InputPort port : schema::EnumValuesInputPort()) {
      int64_t id = plan.FindInput(program.name()->string_view(), port);
      FUZZ_CHECK(id < static_cast<int64_t>(plan.num_tensors()));
    }
    for (schema::OutputPort port : schema::EnumValuesOutputPort()) {
      int64_t id = plan.FindOutput(program.name()->string_view(), port);
      FUZZ_CHECK(id < static_cast<int64_t>(plan.num_tensors()));
    }
  }
  (void)lorart::CheckPlanFitsHostMemory(plan, false);
}

void ParseAndWalk(std::string_view bytes) {
  lorart::Plan plan;
  lorart::Status s = lorart::ParsePlan(bytes, "fuzz.bin", &plan);
  lorac_fuzz::Note("plan", s.ok() ? "loaded" : s.message());
  if (s.ok()) {
    Walk(plan);
  } else {
    FUZZ_CHECK(std::string(s.message()).rfind("fuzz.bin", 0) == 0);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  ParseAndWalk(in);
  ParseAndWalk(lorart::SealPlan(in));
  return 0;
}
