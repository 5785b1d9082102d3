// Pre-tokenizers of tokenizer.json: ByteLevel, Split, Metaspace, Digits,
// Punctuation, Whitespace, WhitespaceSplit, BertPreTokenizer,
// CharDelimiterSplit, Sequence.
#include <utility>

#include "lorart/base/strings.h"
#include "lorart/data/hf/components.h"
#include "lorart/data/hf/regex.h"

namespace lorart {
namespace data {
namespace hf {
namespace {

constexpr char kSupported[] =
    "ByteLevel, Split, Metaspace, Digits, Punctuation, Whitespace, WhitespaceSplit, "
    "BertPreTokenizer, CharDelimiterSplit, Sequence";

// The GPT-2 pattern of the ByteLevel pre-tokenizer (use_regex).
constexpr char kGpt2Pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// Rust regex's \w (Unicode) as a PCRE2 class body.
constexpr char kRustWord[] =
    "\\p{L}\\p{M}\\p{Nd}\\p{Nl}\\p{Pc}\\x{200c}\\x{200d}\\x{24b6}-\\x{24e9}\\x{1f130}-\\x{1f149}"
    "\\x{1f150}-\\x{1f169}\\x{1f170}-\\x{1f189}";
constexpr char kRustSpace[] =
    "\\t-\\r\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}"
    "\\x{205f}\\x{3000}";

// Applies `fn` (NormalizedString -> pieces) to every piece.
template <typename Fn>
Status SplitEach(std::vector<NormalizedString>* splits, Fn fn) {
  std::vector<NormalizedString> out;
  out.reserve(splits->size() * 2);
  for (auto& s : *splits) LORA_RETURN_IF_ERROR(fn(s, &out));
  splits->swap(out);
  return OkStatus();
}

Status SplitByRegex(const Regex& re, bool invert, SplitBehavior behavior,
                    std::vector<NormalizedString>* splits) {
  std::vector<Match> matches;
  return SplitEach(splits, [&](NormalizedString& s, std::vector<NormalizedString>* out) -> Status {
    LORA_RETURN_IF_ERROR(re.FindMatches(s.get(), &matches));
    if (invert) {
      for (auto& m : matches) m.is_match = !m.is_match;
    }
    s.Split(matches, behavior, out);
    return OkStatus();
  });
}

bool PredWhitespace(char32_t c, const void*) { return IsWhitespace(c); }
bool PredNumeric(char32_t c, const void*) { return IsNumeric(c); }
bool PredPunctuation(char32_t c, const void*) { return IsPunctuation(c); }
bool PredEquals(char32_t c, const void* arg) { return c == *static_cast<const char32_t*>(arg); }

void SplitByChar(bool (*pred)(char32_t, const void*), const void* arg, SplitBehavior behavior,
                 std::vector<NormalizedString>* splits) {
  std::vector<Match> matches;
  (void)SplitEach(splits, [&](NormalizedString& s, std::vector<NormalizedString>* out) -> Status {
    FindCharMatches(s.get(), pred, arg, &matches);
    s.Split(matches, behavior, out);
    return OkStatus();
  });
}

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex, const Regex* re)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex), re_(re) {}
  Status PreTokenize(std::vector<NormalizedString>* splits) const override {
    if (add_prefix_space_) {
      for (auto& s : *splits) {
        if (!s.empty() && s.get()[0] != ' ') s.Prepend(" ");
      }
    }
    if (use_regex_) {
      LORA_RETURN_IF_ERROR(SplitByRegex(*re_, false, SplitBehavior::kIsolated, splits));
    }
    for (auto& s : *splits) s.ByteLevelMap();
    return OkStatus();
  }

 private:
  bool add_prefix_space_, use_regex_;
  const Regex* re_;
};

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(std::unique_ptr<Regex> re, SplitBehavior behavior, bool invert)
      : re_(std::move(re)), behavior_(behavior), invert_(invert) {}
  Status PreTokenize(std::vector<NormalizedString>* splits) const override {
    return SplitByRegex(*re_, invert_, behavior_, splits);
  }

 private:
  std::unique_ptr<Regex> re_;
  SplitBehavior behavior_;
  bool invert_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(char32_t replacement, PrependScheme scheme, bool split)
      : replacement_(replacement), scheme_(scheme), split_(split) {
    AppendUtf8(replacement, &str_rep_);
  }
  Status PreTokenize(std::vector<NormalizedString>* splits) const override {
    std::vector<Match> matches;
    static const char32_t kSpace = ' ';
    return SplitEach(splits, [&](NormalizedString& s, std::vector<NormalizedString>* out) -> Status {
      FindCharMatches(s.get(), PredEquals, &kSpace, &matches);
      s.ReplaceMatches(matches, str_rep_);
      bool starts = s.get().compare(0, str_rep_.size(), str_rep_) == 0;
      if (!starts && (scheme_ == PrependScheme::kAlways ||
                      (scheme_ == PrependScheme::kFirst && s.orig_begin() == 0))) {
        s.Prepend(str_rep_);
      }
      if (split_) {
        FindCharMatches(s.get(), PredEquals, &replacement_, &matches);
        s.Split(matches, SplitBehavior::kMergedWithNext, out);
      } else if (!s.empty()) {
        out->push_back(std::move(s));
      }
      return OkStatus();
    });
  }
  void AddTraits(PreTokenizerTraits* traits) const override {
    if (scheme_ == PrependScheme::kFirst) traits->needs_alignment = true;
  }

 private:
  char32_t replacement_;
  std::string str_rep_;
  PrependScheme scheme_;
  bool split_;
};

class CharSplitPreTokenizer : public PreTokenizer {
 public:
  CharSplitPreTokenizer(bool (*pred)(char32_t, const void*), char32_t arg, SplitBehavior behavior)
      : pred_(pred), arg_(arg), behavior_(behavior) {}
  Status PreTokenize(std::vector<NormalizedString>* splits) const override {
    SplitByChar(pred_, &arg_, behavior_, splits);
    return OkStatus();
  }

 private:
  bool (*pred_)(char32_t, const void*);
  char32_t arg_;
  SplitBehavior behavior_;
};

class BertPreTokenizer : public PreTokenizer {
 public:
  Status PreTokenize(std::vector<NormalizedString>* splits) const override {
    SplitByChar(PredWhitespace, nullptr, SplitBehavior::kRemoved, splits);
    SplitByChar(PredPunctuation, nullptr, SplitBehavior::kIsolated, splits);
    return OkStatus();
  }
};

class WhitespacePreTokenizer : public PreTokenizer {
 public:
  explicit WhitespacePreTokenizer(std::unique_ptr<Regex> re) : re_(std::move(re)) {}
  Status PreTokenize(std::vector<NormalizedString>* splits) const override {
    return SplitByRegex(*re_, /*invert=*/true, SplitBehavior::kRemoved, splits);
  }

 private:
  std::unique_ptr<Regex> re_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  Status PreTokenize(std::vector<NormalizedString>* splits) const override {
    auto total = [splits] {
      size_t n = 0;
      for (const auto& s : *splits) n += s.size();
      return n;
    };
    const size_t size = total();
    for (const auto& p : parts_) {
      LORA_RETURN_IF_ERROR(p->PreTokenize(splits));
      if (total() > MaxGrownSize(size)) {
        return GrowthError("a Sequence pre-tokenizer", size, total());
      }
    }
    return OkStatus();
  }
  void AddTraits(PreTokenizerTraits* traits) const override {
    for (const auto& p : parts_) p->AddTraits(traits);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

Status ParseBehavior(const JsonFields& f, const Json& json, const std::string& path, bool required,
                     SplitBehavior* out) {
  std::string b;
  LORA_RETURN_IF_ERROR(f.GetString(json, path, "behavior", required, &b));
  if (b.empty() && !required) return OkStatus();
  if (b == "Removed") {
    *out = SplitBehavior::kRemoved;
  } else if (b == "Isolated") {
    *out = SplitBehavior::kIsolated;
  } else if (b == "MergedWithPrevious") {
    *out = SplitBehavior::kMergedWithPrevious;
  } else if (b == "MergedWithNext") {
    *out = SplitBehavior::kMergedWithNext;
  } else if (b == "Contiguous") {
    *out = SplitBehavior::kContiguous;
  } else {
    return f.Error(JsonFields::Join(path, "behavior"),
                   StrFormat("unknown split behavior %s (Removed, Isolated, MergedWithPrevious, "
                             "MergedWithNext or Contiguous)",
                             Quote(b).c_str()));
  }
  return OkStatus();
}

}  // namespace

StatusOr<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const JsonFields& f, const Json& json,
                                                         const std::string& path) {
  if (json.is_null()) return std::unique_ptr<PreTokenizer>();
  std::string type;
  LORA_RETURN_IF_ERROR(f.GetType(json, path, &type));
  if (type == "ByteLevel") {
    bool add_prefix_space = true, use_regex = true;
    LORA_RETURN_IF_ERROR(f.GetBool(json, path, "add_prefix_space", &add_prefix_space));
    LORA_RETURN_IF_ERROR(f.GetBool(json, path, "use_regex", &use_regex));
    static const Regex* gpt2 = [] {
      auto re = Regex::Compile(kGpt2Pattern);
      return re.ok() ? std::move(re).value().release() : nullptr;
    }();
    if (gpt2 == nullptr) return InternalError("the GPT-2 pattern does not compile with PCRE2");
    return std::unique_ptr<PreTokenizer>(new ByteLevelPreTokenizer(add_prefix_space, use_regex, gpt2));
  }
  if (type == "Split") {
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
    LORA_RETURN_IF_ERROR(ParseBehavior(f, json, path, true, &behavior));
    LORA_RETURN_IF_ERROR(f.GetBool(json, path, "invert", &invert));
    LORA_ASSIGN_OR_RETURN(auto re, MakePattern(f, json, path));
    return std::unique_ptr<PreTokenizer>(new SplitPreTokenizer(std::move(re), behavior, invert));
  }
  if (type == "Metaspace") {
    char32_t replacement;
    LORA_RETURN_IF_ERROR(f.GetChar(json, path, "replacement", &replacement));
    PrependScheme scheme = PrependScheme::kAlways;
    std::string s;
    LORA_RETURN_IF_ERROR(f.GetString(json, path, "prepend_scheme", false, &s));
    if (s == "always") {
      scheme = PrependScheme::kAlways;
    } else if (s == "first") {
      scheme = PrependScheme::kFirst;
    } else if (s == "never") {
      scheme = PrependScheme::kNever;
    } else if (!s.empty()) {
      return f.Error(JsonFields::Join(path, "prepend_scheme"),
                     StrFormat("must be \"always\", \"first\" or \"never\", not %s", Quote(s).c_str()));
    }
    bool add_prefix_space = true;
    LORA_RETURN_IF_ERROR(f.GetBool(json, path, "add_prefix_space", &add_prefix_space));
    if (!add_prefix_space) {
      if (!s.empty() && scheme != PrependScheme::kNever) {
        return f.Error(JsonFields::Join(path, "add_prefix_space"),
                       "add_prefix_space does not match declared prepend_scheme");
      }
      scheme = PrependScheme::kNever;
    }
    bool split = true;
    LORA_RETURN_IF_ERROR(f.GetBool(json, path, "split", &split));
    return std::unique_ptr<PreTokenizer>(new MetaspacePreTokenizer(replacement, scheme, split));
  }
  if (type == "Digits") {
    bool individual = false;
    LORA_RETURN_IF_ERROR(f.GetBool(json, path, "individual_digits", &individual));
    return std::unique_ptr<PreTokenizer>(new CharSplitPreTokenizer(
        PredNumeric, 0, individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous));
  }
  if (type == "Punctuation") {
    SplitBehavior behavior = SplitBehavior::kIsolated;
    LORA_RETURN_IF_ERROR(ParseBehavior(f, json, path, false, &behavior));
    return std::unique_ptr<PreTokenizer>(new CharSplitPreTokenizer(PredPunctuation, 0, behavior));
  }
  if (type == "WhitespaceSplit") {
    return std::unique_ptr<PreTokenizer>(
        new CharSplitPreTokenizer(PredWhitespace, 0, SplitBehavior::kRemoved));
  }
  if (type == "CharDelimiterSplit") {
    char32_t delimiter;
    LORA_RETURN_IF_ERROR(f.GetChar(json, path, "delimiter", &delimiter));
    return std::unique_ptr<PreTokenizer>(
        new CharSplitPreTokenizer(PredEquals, delimiter, SplitBehavior::kRemoved));
  }
  if (type == "BertPreTokenizer") return std::unique_ptr<PreTokenizer>(new BertPreTokenizer());
  if (type == "Whitespace") {
    std::string pattern = std::string("[") + kRustWord + "]+|[^" + kRustWord + kRustSpace + "]+";
    auto re = Regex::Compile(pattern, /*pcre_syntax=*/true);
    if (!re.ok()) return InternalError("the Whitespace pattern does not compile with PCRE2");
    return std::unique_ptr<PreTokenizer>(new WhitespacePreTokenizer(std::move(re).value()));
  }
  if (type == "Sequence") {
    LORA_ASSIGN_OR_RETURN(const Json* list, f.GetArray(json, path, "pretokenizers"));
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (size_t i = 0; i < list->size(); ++i) {
      std::string p = JsonFields::Index(JsonFields::Join(path, "pretokenizers"), i);
      if ((*list)[i].is_null()) return f.Error(p, "must be an object, not null");
      LORA_ASSIGN_OR_RETURN(auto part, MakePreTokenizer(f, (*list)[i], p));
      parts.push_back(std::move(part));
    }
    return std::unique_ptr<PreTokenizer>(new SequencePreTokenizer(std::move(parts)));
  }
  return UnsupportedType(f, path, "pre-tokenizer", type, kSupported);
}

}  // namespace hf
}  // namespace data
}  // namespace lorart
