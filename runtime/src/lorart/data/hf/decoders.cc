// Decoders of tokenizer.json: ByteLevel, Metaspace, ByteFallback, Fuse,
// Strip, Replace, WordPiece, BPEDecoder, Sequence.
#include <utility>

#include "lorart/base/strings.h"
#include "lorart/data/hf/components.h"
#include "lorart/data/hf/regex.h"

namespace lorart {
namespace data {
namespace hf {
namespace {

constexpr char kSupported[] =
    "ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, WordPiece, BPEDecoder, Sequence";

class ByteLevelDecoder : public Decoder {
 public:
  Status DecodeChain(std::vector<std::string>* tokens) const override {
    std::string bytes;
    for (const auto& t : *tokens) {
      size_t start = bytes.size();
      bool all = true;
      for (size_t i = 0, len = 0; i < t.size(); i += len) {
        int b = ByteLevelByte(DecodeUtf8(t, i, &len));
        if (b < 0) {
          all = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      if (!all) {
        bytes.resize(start);
        bytes += t;
      }
    }
    tokens->assign(1, FromUtf8Lossy(bytes));
    return OkStatus();
  }
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, bool strip_first)
      : replacement_(replacement), strip_first_(strip_first) {}
  Status DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t k = 0; k < tokens->size(); ++k) {
      const std::string& t = (*tokens)[k];
      std::string out;
      out.reserve(t.size());
      for (size_t i = 0, len = 0; i < t.size(); i += len) {
        char32_t c = DecodeUtf8(t, i, &len);
        if (c == replacement_) {
          if (!(k == 0 && strip_first_)) out += ' ';
        } else {
          out.append(t, i, len);
        }
      }
      (*tokens)[k] = std::move(out);
    }
    return OkStatus();
  }

 private:
  char32_t replacement_;
  bool strip_first_;
};

// "<0x4A>" -> 0x4A, or -1.
int ByteToken(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  int v = 0;
  for (int i = 3; i < 5; ++i) {
    char c = t[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
          : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

class ByteFallbackDecoder : public Decoder {
 public:
  Status DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (FindInvalidUtf8(pending) == std::string::npos) {
        out.push_back(pending);
      } else {
        for (size_t i = 0; i < pending.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (auto& t : *tokens) {
      int b = ByteToken(t);
      if (b >= 0) {
        pending.push_back(static_cast<char>(b));
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens->swap(out);
    return OkStatus();
  }
};

class FuseDecoder : public Decoder {
 public:
  Status DecodeChain(std::vector<std::string>* tokens) const override {
    std::string all;
    for (const auto& t : *tokens) all += t;
    tokens->assign(1, std::move(all));
    return OkStatus();
  }
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop)
      : content_(content), start_(start), stop_(stop) {}
  Status DecodeChain(std::vector<std::string>* tokens) const override {
    for (auto& t : *tokens) {
      std::vector<char32_t> chars = DecodeAll(t);
      size_t b = 0, e = chars.size();
      for (size_t i = 0; i < start_ && i < chars.size() && chars[i] == content_; ++i) b = i + 1;
      for (size_t i = 0; i < stop_ && i < chars.size(); ++i) {
        size_t index = chars.size() - i - 1;
        if (chars[index] != content_) break;
        e = index;
      }
      std::string out;
      for (size_t i = b; i < e; ++i) AppendUtf8(chars[i], &out);
      t = std::move(out);
    }
    return OkStatus();
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::unique_ptr<Regex> re, std::string content)
      : re_(std::move(re)), content_(std::move(content)) {}
  Status DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<Match> matches;
    size_t size = 0, grown = 0;
    for (const auto& t : *tokens) size += t.size();
    for (auto& t : *tokens) {
      LORA_RETURN_IF_ERROR(re_->FindMatches(t, &matches));
      grown += t.size();
      for (const auto& m : matches) {
        if (m.is_match) grown = grown + content_.size() - (m.e - m.b);
      }
      if (grown > MaxGrownSize(size)) return GrowthError("the Replace decoder", size, grown);
      std::string out;
      for (const auto& m : matches) {
        if (m.is_match) {
          out += content_;
        } else {
          out.append(t, m.b, m.e - m.b);
        }
      }
      t = std::move(out);
    }
    return OkStatus();
  }

 private:
  std::unique_ptr<Regex> re_;
  std::string content_;
};

void ReplaceAll(std::string* s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  std::string out;
  size_t pos = 0;
  for (;;) {
    size_t next = s->find(from, pos);
    if (next == std::string::npos) break;
    out.append(*s, pos, next - pos);
    out += to;
    pos = next + from.size();
  }
  out.append(*s, pos, std::string::npos);
  *s = std::move(out);
}

class WordPieceDecoder : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  Status DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& t = (*tokens)[i];
      if (i != 0) {
        if (t.compare(0, prefix_.size(), prefix_) == 0) {
          size_t at = t.find(prefix_);
          t.erase(at, prefix_.size());
        } else {
          t.insert(0, " ");
        }
      }
      if (cleanup_) {
        static const char* const kPairs[][2] = {
            {" .", "."},       {" ?", "?"},       {" !", "!"},       {" ,", ","},
            {" ' ", "'"},      {" n't", "n't"},   {" 'm", "'m"},     {" do not", " don't"},
            {" 's", "'s"},     {" 've", "'ve"},   {" 're", "'re"}};
        for (const auto& p : kPairs) ReplaceAll(&t, p[0], p[1]);
      }
    }
    return OkStatus();
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

class BpeDecoder : public Decoder {
 public:
  explicit BpeDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  Status DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      ReplaceAll(&(*tokens)[i], suffix_, i + 1 == tokens->size() ? "" : " ");
    }
    return OkStatus();
  }

 private:
  std::string suffix_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  Status DecodeChain(std::vector<std::string>* tokens) const override {
    auto total = [tokens] {
      size_t n = 0;
      for (const auto& t : *tokens) n += t.size();
      return n;
    };
    const size_t size = total();
    for (const auto& p : parts_) {
      LORA_RETURN_IF_ERROR(p->DecodeChain(tokens));
      if (total() > MaxGrownSize(size)) return GrowthError("a Sequence decoder", size, total());
    }
    return OkStatus();
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

StatusOr<std::unique_ptr<Decoder>> MakeDecoder(const JsonFields& f, const Json& json,
                                               const std::string& path) {
  if (json.is_null()) return std::unique_ptr<Decoder>();
  std::string type;
  LORA_RETURN_IF_ERROR(f.GetType(json, path, &type));
  if (type == "ByteLevel") return std::unique_ptr<Decoder>(new ByteLevelDecoder());
  if (type == "Metaspace") {
    char32_t replacement;
    LORA_RETURN_IF_ERROR(f.GetChar(json, path, "replacement", &replacement));
    std::string scheme = "always";
    LORA_RETURN_IF_ERROR(f.GetString(json, path, "prepend_scheme", false, &scheme));
    bool add_prefix_space = true;
    LORA_RETURN_IF_ERROR(f.GetBool(json, path, "add_prefix_space", &add_prefix_space));
    if (scheme != "always" && scheme != "first" && scheme != "never") {
      return f.Error(JsonFields::Join(path, "prepend_scheme"),
                     StrFormat("must be \"always\", \"first\" or \"never\", not %s",
                               Quote(scheme).c_str()));
    }
    if (!add_prefix_space) scheme = "never";
    return std::unique_ptr<Decoder>(new MetaspaceDecoder(replacement, scheme != "never"));
  }
  if (type == "ByteFallback") return std::unique_ptr<Decoder>(new ByteFallbackDecoder());
  if (type == "Fuse") return std::unique_ptr<Decoder>(new FuseDecoder());
  if (type == "Strip") {
    char32_t content;
    LORA_RETURN_IF_ERROR(f.GetChar(json, path, "content", &content));
    int64_t start = 0, stop = 0;
    LORA_RETURN_IF_ERROR(f.GetInt(json, path, "start", true, &start));
    LORA_RETURN_IF_ERROR(f.GetInt(json, path, "stop", true, &stop));
    if (start < 0) return f.Error(JsonFields::Join(path, "start"), "must not be negative");
    if (stop < 0) return f.Error(JsonFields::Join(path, "stop"), "must not be negative");
    return std::unique_ptr<Decoder>(
        new StripDecoder(content, static_cast<size_t>(start), static_cast<size_t>(stop)));
  }
  if (type == "Replace") {
    std::string content;
    LORA_RETURN_IF_ERROR(f.GetString(json, path, "content", true, &content));
    LORA_ASSIGN_OR_RETURN(auto re, MakePattern(f, json, path));
    return std::unique_ptr<Decoder>(new ReplaceDecoder(std::move(re), content));
  }
  if (type == "WordPiece") {
    std::string prefix = "##";
    bool cleanup = true;
    LORA_RETURN_IF_ERROR(f.GetString(json, path, "prefix", false, &prefix));
    LORA_RETURN_IF_ERROR(f.GetBool(json, path, "cleanup", &cleanup));
    return std::unique_ptr<Decoder>(new WordPieceDecoder(prefix, cleanup));
  }
  if (type == "BPEDecoder") {
    std::string suffix = "</w>";
    LORA_RETURN_IF_ERROR(f.GetString(json, path, "suffix", false, &suffix));
    return std::unique_ptr<Decoder>(new BpeDecoder(suffix));
  }
  if (type == "Sequence") {
    LORA_ASSIGN_OR_RETURN(const Json* list, f.GetArray(json, path, "decoders"));
    std::vector<std::unique_ptr<Decoder>> parts;
    for (size_t i = 0; i < list->size(); ++i) {
      std::string p = JsonFields::Index(JsonFields::Join(path, "decoders"), i);
      if ((*list)[i].is_null()) return f.Error(p, "must be an object, not null");
      LORA_ASSIGN_OR_RETURN(auto part, MakeDecoder(f, (*list)[i], p));
      parts.push_back(std::move(part));
    }
    return std::unique_ptr<Decoder>(new SequenceDecoder(std::move(parts)));
  }
  return UnsupportedType(f, path, "decoder", type, kSupported);
}

}  // namespace hf
}  // namespace data
}  // namespace lorart
