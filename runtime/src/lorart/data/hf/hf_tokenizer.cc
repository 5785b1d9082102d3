// HfTokenizer: the tokenizer.json pipeline behind the Tokenizer interface.
#include "lorart/data/hf/hf_tokenizer.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "lorart/base/strings.h"
#include "lorart/data/hf/added_vocabulary.h"
#include "lorart/data/hf/bpe_model.h"
#include "lorart/data/hf/components.h"
#include "lorart/data/hf/json_fields.h"
#include "lorart/io/files.h"
#include "lorart/io/json.h"

namespace lorart {
namespace data {
namespace {

using hf::AddedToken;
using hf::AddedVocabulary;
using hf::BpeModel;
using hf::JsonFields;
using hf::NormalizedString;

class HfTokenizer : public Tokenizer {
 public:
  static StatusOr<std::unique_ptr<Tokenizer>> Build(std::string_view json_text,
                                                    std::string_view config_text,
                                                    const std::string& json_name,
                                                    const std::string& config_name);

  const char* kind() const override { return "tokenizers"; }
  Status EncodeWithSpecial(std::string_view text, const std::vector<ByteRange>& special_ranges,
                           std::vector<int32_t>* ids, std::vector<TokenSpan>* spans) const override;
  void SpecialTokensAround(std::vector<int32_t>* prefix,
                           std::vector<int32_t>* suffix) const override {
    *prefix = prefix_;
    *suffix = suffix_;
  }
  StatusOr<std::string> Decode(const std::vector<int32_t>& ids) const override {
    return DecodeImpl(ids, true);
  }
  StatusOr<std::string> DecodeWithControls(const std::vector<int32_t>& ids) const override {
    return DecodeImpl(ids, false);
  }
  std::string IdToPiece(int32_t id) const override {
    const std::string* p = Piece(id);
    return p ? *p : std::string();
  }
  int32_t PieceToId(std::string_view piece) const override {
    int32_t id = added_.IdOf(piece);
    return id >= 0 ? id : model_->PieceToId(piece);
  }
  bool IsControl(int32_t id) const override {
    const AddedToken* t = added_.ById(id);
    return t != nullptr && t->special;
  }

 private:
  HfTokenizer() = default;
  const std::string* Piece(int32_t id) const {
    const AddedToken* t = added_.ById(id);
    return t ? &t->content : model_->IdToPiece(id);
  }
  StatusOr<std::string> DecodeImpl(const std::vector<int32_t>& ids, bool skip_special) const;

  std::unique_ptr<hf::Normalizer> normalizer_;
  std::unique_ptr<hf::PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<hf::PostProcessor> post_processor_;
  std::unique_ptr<hf::Decoder> decoder_;
  AddedVocabulary added_;
  std::vector<int32_t> prefix_, suffix_;
  bool needs_alignment_ = false;
};

// Components of a pipeline section, its Sequences included. Real files have
// a handful; a file with hundreds (Sequences of Sequences of ByteLevel) makes
// every encoding take seconds or minutes, each step rewriting the text.
constexpr size_t kMaxComponents = 64;

size_t CountComponents(const Json& json, const char* list_key) {
  if (!json.is_object()) return 0;
  size_t n = 1;
  auto it = json.find(list_key);
  if (it != json.end() && it->is_array()) {
    for (const auto& part : *it) n += CountComponents(part, list_key);  // depth <= kMaxJsonDepth
  }
  return n;
}

Status ParseAddedTokens(const JsonFields& f, const Json& root, std::vector<AddedToken>* out) {
  const Json* list = f.Find(root, "added_tokens");
  if (list == nullptr) return OkStatus();
  if (!list->is_array()) {
    return f.Error("added_tokens", StrFormat("must be an array, not %s", JsonTypeName(*list)));
  }
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& item = (*list)[i];
    std::string p = JsonFields::Index("added_tokens", i);
    LORA_RETURN_IF_ERROR(f.ExpectObject(item, p));
    AddedToken t;
    int64_t id;
    LORA_RETURN_IF_ERROR(f.GetInt(item, p, "id", true, &id));
    if (id < 0 || id >= (1 << 24)) {
      return f.Error(JsonFields::Join(p, "id"),
                     StrFormat("id %lld is out of range", static_cast<long long>(id)));
    }
    t.id = static_cast<int32_t>(id);
    LORA_RETURN_IF_ERROR(f.GetString(item, p, "content", true, &t.content));
    if (hf::FindInvalidUtf8(t.content) != std::string::npos) {
      return f.Error(JsonFields::Join(p, "content"), "is not valid UTF-8");
    }
    LORA_RETURN_IF_ERROR(f.GetBool(item, p, "single_word", &t.single_word));
    LORA_RETURN_IF_ERROR(f.GetBool(item, p, "lstrip", &t.lstrip));
    LORA_RETURN_IF_ERROR(f.GetBool(item, p, "rstrip", &t.rstrip));
    LORA_RETURN_IF_ERROR(f.GetBool(item, p, "normalized", &t.normalized));
    LORA_RETURN_IF_ERROR(f.GetBool(item, p, "special", &t.special));
    out->push_back(std::move(t));
  }
  return OkStatus();
}

StatusOr<std::unique_ptr<Tokenizer>> HfTokenizer::Build(std::string_view json_text,
                                                        std::string_view config_text,
                                                        const std::string& json_name,
                                                        const std::string& config_name) {
  Json root;
  LORA_RETURN_IF_ERROR(ParseJson(json_text, json_name, "tokenizer", &root));
  JsonFields f(json_name);
  LORA_RETURN_IF_ERROR(f.ExpectObject(root, ""));
  std::unique_ptr<HfTokenizer> t(new HfTokenizer());
  t->path_ = json_name;

  static const Json kNull;
  auto section = [&](const char* key) -> const Json& {
    const Json* v = f.Find(root, key);
    return v ? *v : kNull;
  };
  for (const auto& [key, list_key] : {std::pair<const char*, const char*>{"normalizer", "normalizers"},
                                      {"pre_tokenizer", "pretokenizers"},
                                      {"post_processor", "processors"},
                                      {"decoder", "decoders"}}) {
    size_t n = CountComponents(section(key), list_key);
    if (n > kMaxComponents) {
      return f.Error(key, StrFormat("has %zu components (Sequences included); lorart reads at most %zu",
                                    n, kMaxComponents));
    }
  }
  const Json* model = f.Find(root, "model");
  if (model == nullptr) return f.Error("model", "is missing");
  LORA_ASSIGN_OR_RETURN(t->model_, BpeModel::FromJson(f, *model, "model"));
  LORA_ASSIGN_OR_RETURN(t->normalizer_, hf::MakeNormalizer(f, section("normalizer"), "normalizer"));
  LORA_ASSIGN_OR_RETURN(t->pre_tokenizer_,
                        hf::MakePreTokenizer(f, section("pre_tokenizer"), "pre_tokenizer"));
  LORA_ASSIGN_OR_RETURN(t->post_processor_,
                        hf::MakePostProcessor(f, section("post_processor"), "post_processor"));
  LORA_ASSIGN_OR_RETURN(t->decoder_, hf::MakeDecoder(f, section("decoder"), "decoder"));
  if (t->pre_tokenizer_) {
    hf::PreTokenizerTraits traits;
    t->pre_tokenizer_->AddTraits(&traits);
    t->needs_alignment_ = traits.needs_alignment;
  }
  if (t->post_processor_) t->post_processor_->SpecialTokensAround(&t->prefix_, &t->suffix_);

  std::vector<AddedToken> added;
  LORA_RETURN_IF_ERROR(ParseAddedTokens(f, root, &added));
  const hf::Normalizer* normalizer = t->normalizer_.get();
  LORA_RETURN_IF_ERROR(t->added_.Build(std::move(added), [normalizer](std::string* s) -> Status {
    if (normalizer == nullptr) return OkStatus();
    NormalizedString ns(*s, 0, false);
    LORA_RETURN_IF_ERROR(normalizer->Normalize(&ns));
    *s = ns.get();
    return OkStatus();
  }));

  int32_t max_id = t->model_->max_id();
  for (const auto& a : t->added_.tokens()) max_id = std::max(max_id, a.id);
  t->vocab_size_ = max_id + 1;
  for (int32_t id : t->prefix_) {
    if (id >= t->vocab_size_) {
      return f.Error("post_processor", StrFormat("special token id %d is outside the vocabulary "
                                                 "(size %d)", id, t->vocab_size_));
    }
  }
  for (int32_t id : t->suffix_) {
    if (id >= t->vocab_size_) {
      return f.Error("post_processor", StrFormat("special token id %d is outside the vocabulary "
                                                 "(size %d)", id, t->vocab_size_));
    }
  }
  t->unk_id_ = t->model_->unk_id();
  // Without tokenizer_config.json: the template's one token before the
  // sequence is BOS, its one token after it EOS.
  if (t->prefix_.size() == 1) {
    t->bos_id_ = t->prefix_[0];
    t->bos_token_ = t->IdToPiece(t->bos_id_);
  }
  if (t->suffix_.size() == 1) {
    t->eos_id_ = t->suffix_[0];
    t->eos_token_ = t->IdToPiece(t->eos_id_);
  }
  t->pad_id_ = -1;
  if (!config_text.empty()) LORA_RETURN_IF_ERROR(t->LoadSpecialTokens(config_text, config_name));
  if (t->pad_id_ < 0) t->pad_id_ = t->eos_id_ >= 0 ? t->eos_id_ : 0;
  return std::unique_ptr<Tokenizer>(std::move(t));
}

Status HfTokenizer::EncodeWithSpecial(std::string_view text,
                                      const std::vector<ByteRange>& special_ranges,
                                      std::vector<int32_t>* ids,
                                      std::vector<TokenSpan>* spans) const {
  ids->clear();
  if (spans) spans->clear();
  if (text.size() >= UINT32_MAX) {
    return InvalidArgumentError(StrFormat("%s: a text of %zu bytes is too long to tokenize",
                                          path_.c_str(), text.size()));
  }
  size_t bad = hf::FindInvalidUtf8(text);
  if (bad != std::string_view::npos) {
    return InvalidArgumentError(StrFormat("%s: the text is not valid UTF-8 at byte %zu",
                                          path_.c_str(), bad));
  }
  for (size_t i = 0; i < special_ranges.size(); ++i) {
    const ByteRange& r = special_ranges[i];
    if (r.begin > r.end || r.end > text.size() ||
        (i > 0 && r.begin < special_ranges[i - 1].end)) {
      return InvalidArgumentError(StrFormat(
          "%s: special range %zu [%u, %u) is not a sorted, disjoint range of the %zu-byte text",
          path_.c_str(), i, r.begin, r.end, text.size()));
    }
  }
  const bool track = spans != nullptr || needs_alignment_ ||
                     (added_.normalized_special() && !special_ranges.empty());
  AddedVocabulary::SpecialAllowed allowed = [&special_ranges](const NormalizedString& s, size_t b,
                                                              size_t e) {
    if (special_ranges.empty()) return false;
    hf::Offsets o = s.tracking() ? s.OriginalRange(b, e)
                                 : hf::Offsets{static_cast<uint32_t>(b), static_cast<uint32_t>(e)};
    return InByteRanges(special_ranges, o.b, o.e);
  };

  struct Part {
    NormalizedString ns;
    int32_t token;  // index into added_.tokens(), -1 for text
  };
  std::vector<Part> parts;
  std::vector<AddedVocabulary::Piece> pieces;
  {
    NormalizedString root(text, 0, track);
    if (added_.has_raw()) {
      added_.FindMatches(root, false, allowed, &pieces);
      for (const auto& p : pieces) {
        if (p.e > p.b) parts.push_back({root.Slice(p.b, p.e), p.token});
      }
    } else if (!root.empty()) {
      parts.push_back({std::move(root), -1});
    }
  }
  // Normalize the text pieces, then find the normalized added tokens in them.
  // The pipeline may not grow the whole text beyond MaxGrownSize either (a
  // Prepend of a long string to every piece between added tokens).
  const size_t max_bytes = hf::MaxGrownSize(text.size());
  size_t normalized_bytes = 0, split_bytes = 0;
  std::vector<Part> parts2;
  parts2.reserve(parts.size());
  for (auto& part : parts) {
    if (part.token >= 0) {
      parts2.push_back(std::move(part));
      continue;
    }
    if (normalizer_) {
      LORA_RETURN_IF_ERROR(normalizer_->Normalize(&part.ns), "%s: normalizing", path_.c_str());
    }
    normalized_bytes += part.ns.size();
    if (normalized_bytes > max_bytes) {
      return hf::GrowthError(StrFormat("%s: normalizing", path_.c_str()).c_str(), text.size(),
                             normalized_bytes);
    }
    if (added_.has_normalized()) {
      added_.FindMatches(part.ns, true, allowed, &pieces);
      for (const auto& p : pieces) {
        if (p.e > p.b) parts2.push_back({part.ns.Slice(p.b, p.e), p.token});
      }
    } else if (!part.ns.empty()) {
      parts2.push_back(std::move(part));
    }
  }

  std::vector<hf::EncodedToken> encoded;
  const bool want_values = spans != nullptr && post_processor_ != nullptr;
  std::vector<NormalizedString> splits;
  std::vector<hf::ModelToken> mtoks;
  for (const auto& part : parts2) {
    if (part.token >= 0) {
      const AddedToken& t = added_.tokens()[part.token];
      ids->push_back(t.id);
      if (spans) {
        hf::Offsets o = part.ns.OriginalRange(0, part.ns.size());
        encoded.push_back({t.id, part.ns.get(), o.b, o.e});
      }
      continue;
    }
    splits.clear();
    splits.push_back(part.ns);
    if (pre_tokenizer_) {
      LORA_RETURN_IF_ERROR(pre_tokenizer_->PreTokenize(&splits), "%s: pre-tokenizing",
                           path_.c_str());
    }
    for (const auto& s : splits) split_bytes += s.size();
    if (split_bytes > max_bytes) {
      return hf::GrowthError(StrFormat("%s: pre-tokenizing", path_.c_str()).c_str(), text.size(),
                             split_bytes);
    }
    for (const auto& s : splits) {
      mtoks.clear();
      LORA_RETURN_IF_ERROR(model_->Tokenize(s.get(), &mtoks));
      for (const auto& m : mtoks) {
        ids->push_back(m.id);
        if (spans) {
          hf::Offsets o = s.OriginalRange(m.b, m.e);
          const std::string* piece = want_values ? model_->IdToPiece(m.id) : nullptr;
          encoded.push_back({m.id, piece ? std::string_view(*piece) : std::string_view(), o.b, o.e});
        }
      }
    }
  }
  if (spans) {
    if (post_processor_) post_processor_->ProcessSpans(text, &encoded);
    spans->reserve(encoded.size());
    for (const auto& e : encoded) spans->push_back(TokenSpan{e.begin, e.end});
  }
  return OkStatus();
}

StatusOr<std::string> HfTokenizer::DecodeImpl(const std::vector<int32_t>& ids,
                                              bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    int32_t id = ids[i];
    if (id < 0 || id >= vocab_size_) {
      return InvalidArgumentError(StrFormat("%s: token id %d (at %zu) is outside the vocabulary "
                                            "[0, %d)",
                                            path_.c_str(), id, i, vocab_size_));
    }
    const std::string* piece = Piece(id);
    if (piece == nullptr) continue;  // an id no piece has: HF skips it
    if (skip_special && added_.IsSpecialContent(*piece)) continue;
    tokens.push_back(*piece);
  }
  std::string out;
  if (decoder_) {
    LORA_RETURN_IF_ERROR(decoder_->DecodeChain(&tokens), "%s: decoding", path_.c_str());
    for (const auto& t : tokens) out += t;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) out += ' ';
      out += tokens[i];
    }
  }
  return out;
}

// "dir/tokenizer.json" -> "dir/tokenizer_config.json" (for messages).
std::string ConfigNameFor(const std::string& name) {
  size_t slash = name.rfind('/');
  std::string dir = slash == std::string::npos ? "" : name.substr(0, slash + 1);
  return dir + "tokenizer_config.json";
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> HfTokenizerFromJson(std::string_view tokenizer_json,
                                                         std::string_view tokenizer_config_json,
                                                         const std::string& name) {
  return HfTokenizer::Build(tokenizer_json, tokenizer_config_json, name, ConfigNameFor(name));
}

StatusOr<std::unique_ptr<Tokenizer>> LoadHfTokenizer(const std::string& tokenizer_json_path,
                                                     const std::string& tokenizer_config_path) {
  LORA_ASSIGN_OR_RETURN(std::string json, ReadWholeFile(tokenizer_json_path));
  std::string config;
  if (!tokenizer_config_path.empty()) {
    LORA_ASSIGN_OR_RETURN(config, ReadWholeFile(tokenizer_config_path));
    if (config.empty()) {
      return InvalidArgumentError(StrFormat("%s: is empty", tokenizer_config_path.c_str()));
    }
  }
  return HfTokenizer::Build(json, config, tokenizer_json_path, tokenizer_config_path);
}

}  // namespace data
}  // namespace lorart
