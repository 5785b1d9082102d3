// Normalizers of tokenizer.json: NFC, NFD, NFKC, NFKD, Prepend, Replace,
// Lowercase, Strip, StripAccents, ByteLevel, Sequence. (Precompiled, the
// SentencePiece charsmap, is rejected: `tokenizers` itself cannot build one
// from an empty map, and a real map needs SentencePiece's normalizer.)
#include <utility>

#include <utf8proc.h>

#include "lorart/base/strings.h"
#include "lorart/data/hf/components.h"
#include "lorart/data/hf/regex.h"

namespace lorart {
namespace data {
namespace hf {

Status UnsupportedType(const JsonFields& f, const std::string& path, const char* kind,
                       const std::string& type, const char* supported) {
  return f.Error(JsonFields::Join(path, "type"),
                 StrFormat("%s type %s is not supported (lorart reads %s)", kind,
                           Quote(type).c_str(), supported));
}

Status GrowthError(const char* what, size_t from, size_t to) {
  return InvalidArgumentError(StrFormat("%s would grow a text of %zu bytes to %zu bytes (more "
                                        "than 64 times plus 64 KiB)",
                                        what, from, to));
}

StatusOr<std::unique_ptr<Regex>> MakePattern(const JsonFields& f, const Json& object,
                                             const std::string& path) {
  const Json* pattern = f.Find(object, "pattern");
  std::string ppath = JsonFields::Join(path, "pattern");
  if (pattern == nullptr) return f.Error(ppath, "is missing");
  LORA_RETURN_IF_ERROR(f.ExpectObject(*pattern, ppath));
  const Json* s = f.Find(*pattern, "String");
  const Json* r = f.Find(*pattern, "Regex");
  if ((s == nullptr) == (r == nullptr)) {
    return f.Error(ppath, "must have exactly one of \"String\" and \"Regex\"");
  }
  std::string text;
  LORA_RETURN_IF_ERROR(f.AsString(s ? *s : *r, JsonFields::Join(ppath, s ? "String" : "Regex"), &text));
  if (FindInvalidUtf8(text) != std::string::npos) return f.Error(ppath, "is not valid UTF-8");
  auto re = s ? Regex::Compile(EscapeRegex(text), /*pcre_syntax=*/true) : Regex::Compile(text);
  if (!re.ok()) return f.Error(ppath, re.status().message());
  return std::move(re).value();
}

namespace {

class NormalFormNormalizer : public Normalizer {
 public:
  explicit NormalFormNormalizer(NormalForm form) : form_(form) {}
  Status Normalize(NormalizedString* s) const override {
    if (!s->ApplyNormalForm(form_)) return InternalError("utf8proc: normalization failed");
    return OkStatus();
  }

 private:
  NormalForm form_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prepend) : prepend_(std::move(prepend)) {}
  Status Normalize(NormalizedString* s) const override {
    if (!s->empty()) s->Prepend(prepend_);
    return OkStatus();
  }

 private:
  std::string prepend_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(std::unique_ptr<Regex> re, std::string content)
      : re_(std::move(re)), content_(std::move(content)) {}
  Status Normalize(NormalizedString* s) const override {
    std::vector<Match> matches;
    LORA_RETURN_IF_ERROR(re_->FindMatches(s->get(), &matches));
    size_t grown = s->size();
    for (const auto& m : matches) {
      if (m.is_match) grown = grown + content_.size() - (m.e - m.b);
    }
    if (grown > MaxGrownSize(s->size())) {
      return GrowthError("the Replace normalizer", s->size(), grown);
    }
    s->ReplaceMatches(matches, content_);
    return OkStatus();
  }

 private:
  std::unique_ptr<Regex> re_;
  std::string content_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  Status Normalize(NormalizedString* s) const override {
    s->Lowercase();
    return OkStatus();
  }
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  Status Normalize(NormalizedString* s) const override {
    s->Strip(left_, right_);
    return OkStatus();
  }

 private:
  bool left_, right_;
};

class StripAccentsNormalizer : public Normalizer {
 public:
  Status Normalize(NormalizedString* s) const override {
    // NormalizedString::filter(!is_combining_mark): removed marks fold into
    // the change of the character kept before them.
    const std::string& text = s->get();
    std::vector<char32_t> chars = DecodeAll(text);
    std::vector<CharChange> dest;
    size_t leading_removed = 0;
    bool any = false;
    for (char32_t c : chars) {
      auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
      bool mark = cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_MC ||
                  cat == UTF8PROC_CATEGORY_ME;
      if (mark) {
        any = true;
        if (dest.empty()) {
          ++leading_removed;
        } else {
          --dest.back().second;
        }
      } else {
        dest.emplace_back(c, 0);
      }
    }
    if (any) s->Transform(dest, leading_removed);
    return OkStatus();
  }
};

class ByteLevelNormalizer : public Normalizer {
 public:
  Status Normalize(NormalizedString* s) const override {
    s->ByteLevelMap();
    return OkStatus();
  }
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  Status Normalize(NormalizedString* s) const override {
    const size_t size = s->size();
    for (const auto& p : parts_) {
      LORA_RETURN_IF_ERROR(p->Normalize(s));
      if (s->size() > MaxGrownSize(size)) {
        return GrowthError("a Sequence normalizer", size, s->size());
      }
    }
    return OkStatus();
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

StatusOr<std::unique_ptr<Normalizer>> MakeNormalizer(const JsonFields& f, const Json& json,
                                                     const std::string& path) {
  if (json.is_null()) return std::unique_ptr<Normalizer>();
  std::string type;
  LORA_RETURN_IF_ERROR(f.GetType(json, path, &type));
  if (type == "NFC") return std::unique_ptr<Normalizer>(new NormalFormNormalizer(NormalForm::kNFC));
  if (type == "NFD") return std::unique_ptr<Normalizer>(new NormalFormNormalizer(NormalForm::kNFD));
  if (type == "NFKC") return std::unique_ptr<Normalizer>(new NormalFormNormalizer(NormalForm::kNFKC));
  if (type == "NFKD") return std::unique_ptr<Normalizer>(new NormalFormNormalizer(NormalForm::kNFKD));
  if (type == "Prepend") {
    std::string prepend;
    LORA_RETURN_IF_ERROR(f.GetString(json, path, "prepend", true, &prepend));
    return std::unique_ptr<Normalizer>(new PrependNormalizer(prepend));
  }
  if (type == "Replace") {
    std::string content;
    LORA_RETURN_IF_ERROR(f.GetString(json, path, "content", true, &content));
    LORA_ASSIGN_OR_RETURN(auto re, MakePattern(f, json, path));
    return std::unique_ptr<Normalizer>(new ReplaceNormalizer(std::move(re), content));
  }
  if (type == "Lowercase") return std::unique_ptr<Normalizer>(new LowercaseNormalizer());
  if (type == "Strip") {
    bool left = true, right = true;
    LORA_RETURN_IF_ERROR(f.GetBool(json, path, "strip_left", &left));
    LORA_RETURN_IF_ERROR(f.GetBool(json, path, "strip_right", &right));
    return std::unique_ptr<Normalizer>(new StripNormalizer(left, right));
  }
  if (type == "StripAccents") return std::unique_ptr<Normalizer>(new StripAccentsNormalizer());
  if (type == "ByteLevel") return std::unique_ptr<Normalizer>(new ByteLevelNormalizer());
  if (type == "Sequence") {
    LORA_ASSIGN_OR_RETURN(const Json* list, f.GetArray(json, path, "normalizers"));
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (size_t i = 0; i < list->size(); ++i) {
      std::string p = JsonFields::Index(JsonFields::Join(path, "normalizers"), i);
      if ((*list)[i].is_null()) return f.Error(p, "must be an object, not null");
      LORA_ASSIGN_OR_RETURN(auto n, MakeNormalizer(f, (*list)[i], p));
      parts.push_back(std::move(n));
    }
    return std::unique_ptr<Normalizer>(new SequenceNormalizer(std::move(parts)));
  }
  return UnsupportedType(f, path, "normalizer", type,
                         "NFC, NFD, NFKC, NFKD, Prepend, Replace, Lowercase, Strip, StripAccents, "
                         "ByteLevel, Sequence");
}

}  // namespace hf
}  // namespace data
}  // namespace lorart
