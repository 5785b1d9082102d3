// The programs of train.bin and their signatures, declared once.
//
// What each program input and output is, is the schema's InputPort /
// OutputPort (train_bin.fbs); a Program stores one per tensor it takes or
// returns. The compiler's IR spells a port as the snake_case of its
// enumerator (lora.input = "segment_ids" is InputPort::SegmentIds): PortName
// and ParseInputPort / ParseOutputPort below are the only conversion, so the
// names are not a second list. PortRule is each port's dtype and rank, which
// the plan loader checks. Header-only and free of MLIR: the frontend, the
// passes and the runtime include it.
#ifndef LORART_PLAN_PORTS_H_
#define LORART_PLAN_PORTS_H_

#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lorart/schema/train_bin_generated.h"

namespace lorart {

// The programs a plan holds (Program.name); logits_step is optional.
namespace programs {
inline constexpr char kTrainStep[] = "train_step";
inline constexpr char kOptimizerStep[] = "optimizer_step";
inline constexpr char kEvalStep[] = "eval_step";
inline constexpr char kLogitsStep[] = "logits_step";
}  // namespace programs

using InputPort = schema::InputPort;
using OutputPort = schema::OutputPort;

namespace ports_detail {

// "SegmentIds" -> "segment_ids".
inline std::string SnakeCase(const char* camel) {
  std::string out;
  for (const char* c = camel; *c; ++c) {
    if (std::isupper(static_cast<unsigned char>(*c)) && c != camel) out += '_';
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(*c)));
  }
  return out;
}

template <typename E, size_t N>
const std::vector<std::string>& Names(const E (&values)[N], const char* (*name)(E)) {
  static const std::vector<std::string> names = [&] {
    std::vector<std::string> v;
    for (E e : values) v.push_back(SnakeCase(name(e)));
    return v;
  }();
  return names;
}

inline const std::vector<std::string>& InputNames() {
  return Names(schema::EnumValuesInputPort(), schema::EnumNameInputPort);
}
inline const std::vector<std::string>& OutputNames() {
  return Names(schema::EnumValuesOutputPort(), schema::EnumNameOutputPort);
}

}  // namespace ports_detail

// The IR's spelling of a port ("tokens", "loss_sum").
inline const std::string& PortName(schema::InputPort p) {
  return ports_detail::InputNames()[static_cast<size_t>(p)];
}
inline const std::string& PortName(schema::OutputPort p) {
  return ports_detail::OutputNames()[static_cast<size_t>(p)];
}

inline std::optional<schema::InputPort> ParseInputPort(std::string_view name) {
  const auto& names = ports_detail::InputNames();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return schema::EnumValuesInputPort()[i];
  return std::nullopt;
}
inline std::optional<schema::OutputPort> ParseOutputPort(std::string_view name) {
  const auto& names = ports_detail::OutputNames();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return schema::EnumValuesOutputPort()[i];
  return std::nullopt;
}

// "tokens, positions, ..." for error messages.
inline std::string PortList(bool inputs) {
  std::string out;
  for (const std::string& n : inputs ? ports_detail::InputNames() : ports_detail::OutputNames())
    out += (out.empty() ? "" : ", ") + n;
  return out;
}

// The dtype and rank a port's tensor has.
struct PortRule {
  schema::DType dtype;
  int rank;
};

inline PortRule RuleOf(schema::InputPort p) {
  using D = schema::DType;
  using P = schema::InputPort;
  switch (p) {
    case P::Tokens:
    case P::Positions:
    case P::SegmentIds:
    case P::Targets:
    case P::SequenceIds: return {D::I32, 2};
    case P::LossMask:
    case P::ReplayMask: return {D::BOOL, 2};
    case P::PairMask: return {D::BOOL, 1};
    case P::LastIndex: return {D::I32, 1};
    case P::LearningRate:
    case P::Step:
    case P::TokenCount:
    case P::SyncGradients: return {D::F32, 0};
  }
  return {D::F32, -1};
}

inline PortRule RuleOf(schema::OutputPort p) {
  using D = schema::DType;
  using P = schema::OutputPort;
  switch (p) {
    case P::Logits: return {D::F32, 3};
    case P::Count:
    case P::ReplayCount: return {D::I64, 0};
    default: return {D::F32, 0};
  }
}

}  // namespace lorart

#endif  // LORART_PLAN_PORTS_H_
