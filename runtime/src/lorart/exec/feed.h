// One feeder for every caller that binds data to a program's inputs (the
// trainer, the C API, generate, merge's check): inputs are bound by their
// port (train.bin's Program.input_ports, lorart/plan/ports.h), and what a
// program lacks is decided here, once.
#ifndef LORART_EXEC_FEED_H_
#define LORART_EXEC_FEED_H_

#include <cstddef>
#include <initializer_list>
#include <string>
#include <vector>

#include "lorart/base/status.h"
#include "lorart/exec/session.h"
#include "lorart/plan/ports.h"

namespace lorart {

struct InputData {
  schema::InputPort port;
  const void* data;
  size_t bytes;
  // Set when the program has this input, skipped when it has none (a plan
  // without packing has no segment ids); a required input the program lacks
  // is an error naming it.
  bool optional = false;
};

Status FeedInputs(Session* s, const std::string& program, std::initializer_list<InputData> inputs);

// @logits_step's inputs (generate, merge's check): I32 tokens, positions and
// segment ids [rows, seq] (the ids only where the plan packs), last_index [rows].
Status FeedLogitsStep(Session* s, const std::vector<int32_t>& tokens,
                      const std::vector<int32_t>& positions, const std::vector<int32_t>& segments,
                      const std::vector<int32_t>& last_index);

// Whether `program` of `plan` takes the input `port`.
bool HasInput(const Plan& plan, const std::string& program, schema::InputPort port);

}  // namespace lorart

#endif  // LORART_EXEC_FEED_H_
