// Post-processors of tokenizer.json: TemplateProcessing (the single-sequence
// template), ByteLevel (offset trimming), RobertaProcessing,
// BertProcessing, Sequence.
#include <algorithm>
#include <utility>

#include "lorart/base/strings.h"
#include "lorart/data/hf/components.h"

namespace lorart {
namespace data {
namespace hf {
namespace {

constexpr char kSupported[] =
    "TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence";

// ByteLevel's process_offsets (trim_offsets), in bytes: HF moves char
// offsets by the number of leading/trailing 'Ġ' or whitespace characters
// of the token's text; here that many characters of the input.
void TrimOffsets(std::string_view text, bool add_prefix_space, std::vector<EncodedToken>* tokens) {
  auto is_space = [](char32_t c) { return c == 0x120 || IsWhitespace(c); };
  for (size_t i = 0; i < tokens->size(); ++i) {
    EncodedToken& t = (*tokens)[i];
    std::vector<char32_t> chars = DecodeAll(t.value);
    size_t leading = 0, trailing = 0;
    while (leading < chars.size() && is_space(chars[leading])) ++leading;
    while (trailing < chars.size() && is_space(chars[chars.size() - 1 - trailing])) ++trailing;
    if (leading == 0 && trailing == 0) continue;
    if (leading > 0) {
      bool is_first = i == 0 || t.begin == 0;
      if (is_first && add_prefix_space && leading == 1) leading = 0;
      uint32_t b = t.begin;
      for (size_t k = 0; k < leading && b < t.end; ++k) {
        b += static_cast<uint32_t>(Utf8Len(static_cast<unsigned char>(text[b])));
      }
      t.begin = std::min(b, t.end);
    }
    if (trailing > 0) {
      // offsets.1 >= trailing (in characters): enough characters before end.
      uint32_t e = t.end;
      size_t k = 0;
      for (; k < trailing && e > 0; ++k) {
        do {
          --e;
        } while (e > 0 && (static_cast<unsigned char>(text[e]) & 0xC0) == 0x80);
      }
      if (k == trailing) t.end = std::max(e, t.begin);
    }
  }
}

class TemplateProcessor : public PostProcessor {
 public:
  TemplateProcessor(std::vector<int32_t> prefix, std::vector<int32_t> suffix)
      : prefix_(std::move(prefix)), suffix_(std::move(suffix)) {}
  void SpecialTokensAround(std::vector<int32_t>* prefix,
                           std::vector<int32_t>* suffix) const override {
    *prefix = prefix_;
    *suffix = suffix_;
  }

 private:
  std::vector<int32_t> prefix_, suffix_;
};

class ByteLevelProcessor : public PostProcessor {
 public:
  ByteLevelProcessor(bool trim_offsets, bool add_prefix_space)
      : trim_offsets_(trim_offsets), add_prefix_space_(add_prefix_space) {}
  void SpecialTokensAround(std::vector<int32_t>* prefix,
                           std::vector<int32_t>* suffix) const override {
    prefix->clear();
    suffix->clear();
  }
  void ProcessSpans(std::string_view text, std::vector<EncodedToken>* tokens) const override {
    if (trim_offsets_) TrimOffsets(text, add_prefix_space_, tokens);
  }

 protected:
  bool trim_offsets_, add_prefix_space_;
};

// RobertaProcessing: <s> A </s>, and ByteLevel's trimming.
class RobertaProcessor : public ByteLevelProcessor {
 public:
  RobertaProcessor(int32_t cls, int32_t sep, bool trim_offsets, bool add_prefix_space)
      : ByteLevelProcessor(trim_offsets, add_prefix_space), cls_(cls), sep_(sep) {}
  void SpecialTokensAround(std::vector<int32_t>* prefix,
                           std::vector<int32_t>* suffix) const override {
    prefix->assign(1, cls_);
    suffix->assign(1, sep_);
  }

 private:
  int32_t cls_, sep_;
};

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> parts)
      : parts_(std::move(parts)) {}
  void SpecialTokensAround(std::vector<int32_t>* prefix,
                           std::vector<int32_t>* suffix) const override {
    prefix->clear();
    suffix->clear();
    std::vector<int32_t> p, s;
    for (const auto& part : parts_) {  // a later processor wraps what the earlier ones made
      part->SpecialTokensAround(&p, &s);
      prefix->insert(prefix->begin(), p.begin(), p.end());
      suffix->insert(suffix->end(), s.begin(), s.end());
    }
  }
  void ProcessSpans(std::string_view text, std::vector<EncodedToken>* tokens) const override {
    for (const auto& part : parts_) part->ProcessSpans(text, tokens);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

// ["[SEP]", 102] -> 102.
Status TokenPair(const JsonFields& f, const Json& json, const std::string& path, const char* key,
                 int32_t* id) {
  const Json* v = f.Find(json, key);
  std::string p = JsonFields::Join(path, key);
  if (v == nullptr) return f.Error(p, "is missing");
  if (!v->is_array() || v->size() != 2 || !(*v)[0].is_string()) {
    return f.Error(p, "must be a [token, id] pair");
  }
  int64_t value;
  LORA_RETURN_IF_ERROR(f.AsInt((*v)[1], JsonFields::Index(p, 1), &value));
  if (value < 0 || value > INT32_MAX) return f.Error(JsonFields::Index(p, 1), "is out of range");
  *id = static_cast<int32_t>(value);
  return OkStatus();
}

StatusOr<std::unique_ptr<PostProcessor>> MakeTemplate(const JsonFields& f, const Json& json,
                                                      const std::string& path) {
  const Json* single = f.Find(json, "single");
  std::string spath = JsonFields::Join(path, "single");
  if (single == nullptr) return f.Error(spath, "is missing");
  if (!single->is_array()) {
    return f.Error(spath, StrFormat("must be an array of pieces, not %s", JsonTypeName(*single)));
  }
  const Json* specials = f.Find(json, "special_tokens");
  std::string sppath = JsonFields::Join(path, "special_tokens");
  if (specials != nullptr && !specials->is_object()) {
    return f.Error(sppath, StrFormat("must be an object, not %s", JsonTypeName(*specials)));
  }
  std::vector<int32_t> prefix, suffix;
  bool seen_sequence = false;
  for (size_t i = 0; i < single->size(); ++i) {
    const Json& piece = (*single)[i];
    std::string p = JsonFields::Index(spath, i);
    LORA_RETURN_IF_ERROR(f.ExpectObject(piece, p));
    if (f.Find(piece, "Sequence") != nullptr) {
      if (seen_sequence) return f.Error(p, "a second Sequence piece in the single template");
      seen_sequence = true;
      continue;
    }
    const Json* st = f.Find(piece, "SpecialToken");
    if (st == nullptr) return f.Error(p, "must be {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    std::string id;
    LORA_RETURN_IF_ERROR(f.GetString(*st, JsonFields::Join(p, "SpecialToken"), "id", true, &id));
    const Json* entry = specials ? f.Find(*specials, id.c_str()) : nullptr;
    std::string epath = JsonFields::Join(sppath, id.c_str());
    if (entry == nullptr) {
      return f.Error(p, StrFormat("special token %s is not in special_tokens", Quote(id).c_str()));
    }
    LORA_ASSIGN_OR_RETURN(const Json* ids, f.GetArray(*entry, epath, "ids"));
    for (size_t k = 0; k < ids->size(); ++k) {
      int64_t v;
      std::string ip = JsonFields::Index(JsonFields::Join(epath, "ids"), k);
      LORA_RETURN_IF_ERROR(f.AsInt((*ids)[k], ip, &v));
      if (v < 0 || v > INT32_MAX) return f.Error(ip, "is out of range");
      (seen_sequence ? suffix : prefix).push_back(static_cast<int32_t>(v));
    }
  }
  if (!seen_sequence) return f.Error(spath, "has no Sequence piece");
  return std::unique_ptr<PostProcessor>(new TemplateProcessor(std::move(prefix), std::move(suffix)));
}

}  // namespace

StatusOr<std::unique_ptr<PostProcessor>> MakePostProcessor(const JsonFields& f, const Json& json,
                                                           const std::string& path) {
  if (json.is_null()) return std::unique_ptr<PostProcessor>();
  std::string type;
  LORA_RETURN_IF_ERROR(f.GetType(json, path, &type));
  if (type == "TemplateProcessing") return MakeTemplate(f, json, path);
  if (type == "ByteLevel") {
    bool trim_offsets = true, add_prefix_space = true;
    LORA_RETURN_IF_ERROR(f.GetBool(json, path, "trim_offsets", &trim_offsets));
    LORA_RETURN_IF_ERROR(f.GetBool(json, path, "add_prefix_space", &add_prefix_space));
    return std::unique_ptr<PostProcessor>(new ByteLevelProcessor(trim_offsets, add_prefix_space));
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    int32_t cls, sep;
    LORA_RETURN_IF_ERROR(TokenPair(f, json, path, "cls", &cls));
    LORA_RETURN_IF_ERROR(TokenPair(f, json, path, "sep", &sep));
    bool trim_offsets = true, add_prefix_space = true;
    if (type == "RobertaProcessing") {
      LORA_RETURN_IF_ERROR(f.GetBool(json, path, "trim_offsets", &trim_offsets));
      LORA_RETURN_IF_ERROR(f.GetBool(json, path, "add_prefix_space", &add_prefix_space));
    } else {
      trim_offsets = false;
    }
    return std::unique_ptr<PostProcessor>(
        new RobertaProcessor(cls, sep, trim_offsets, add_prefix_space));
  }
  if (type == "Sequence") {
    LORA_ASSIGN_OR_RETURN(const Json* list, f.GetArray(json, path, "processors"));
    std::vector<std::unique_ptr<PostProcessor>> parts;
    for (size_t i = 0; i < list->size(); ++i) {
      std::string p = JsonFields::Index(JsonFields::Join(path, "processors"), i);
      if ((*list)[i].is_null()) return f.Error(p, "must be an object, not null");
      LORA_ASSIGN_OR_RETURN(auto part, MakePostProcessor(f, (*list)[i], p));
      parts.push_back(std::move(part));
    }
    return std::unique_ptr<PostProcessor>(new SequenceProcessor(std::move(parts)));
  }
  return UnsupportedType(f, path, "post-processor", type, kSupported);
}

}  // namespace hf
}  // namespace data
}  // namespace lorart
