#include "lorart/data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <unordered_map>
#include <utility>

#include "lorart/base/strings.h"
#include "lorart/data/hf/hf_tokenizer.h"
#include "lorart/data/hf/json_fields.h"
#include "lorart/data/sentencepiece_model.h"
#include "lorart/io/files.h"
#include "lorart/io/json.h"
#include "lorart/io/mapped_file.h"

namespace lorart {
namespace data {
namespace {

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// SentencePiece's status as one line ("Not found: ..." -> "not found: ...").
std::string SpMessage(const sentencepiece::util::Status& status) {
  return EscapeForMessage(status.ToString(), 300);
}

class LinesIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LinesIterator(const std::vector<std::string>* lines) : lines_(lines) {}
  bool done() const override { return index_ >= lines_->size(); }
  void Next() override { ++index_; }
  const std::string& value() const override { return (*lines_)[index_]; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  const std::vector<std::string>* lines_;
  size_t index_ = 0;
};

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// SentencePiece `tokenizer.model`.
class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer() : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}

  Status Init(std::string_view model_bytes, const std::string& name);

  const char* kind() const override { return "sentencepiece"; }
  Status EncodeWithSpecial(std::string_view text, const std::vector<ByteRange>& special_ranges,
                           std::vector<int32_t>* ids,
                           std::vector<TokenSpan>* spans) const override;
  void SpecialTokensAround(std::vector<int32_t>* prefix,
                           std::vector<int32_t>* suffix) const override {
    prefix->clear();
    suffix->clear();
    if (bos_id_ >= 0) prefix->push_back(bos_id_);
  }
  StatusOr<std::string> Decode(const std::vector<int32_t>& ids) const override;
  StatusOr<std::string> DecodeWithControls(const std::vector<int32_t>& ids) const override;
  std::string IdToPiece(int32_t id) const override {
    if (id < 0 || id >= vocab_size_) return "";
    return sp_->IdToPiece(id);
  }
  int32_t PieceToId(std::string_view piece) const override {
    int id = sp_->PieceToId(piece);
    // SentencePiece answers unk for an unknown piece.
    if (id == sp_->unk_id() && piece != sp_->IdToPiece(id)) return -1;
    return id;
  }
  bool IsControl(int32_t id) const override {
    return id >= 0 && id < vocab_size_ && sp_->IsControl(id);
  }

 private:
  // Encodes text with no control token recognised, appending.
  Status EncodeRun(std::string_view text, uint32_t offset, std::vector<int32_t>* ids,
                   std::vector<TokenSpan>* spans) const;

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  // Control pieces ("<s>", "</s>", ...) that template text may spell.
  std::vector<std::pair<std::string, int32_t>> controls_;
};

Status SentencePieceTokenizer::Init(std::string_view model_bytes, const std::string& name) {
  path_ = name;
  if (model_bytes.empty()) {
    return InvalidArgumentError(
        StrFormat("%s: not a SentencePiece model: the file is empty", name.c_str()));
  }
  // The library trusts a normalizer's character map (sentencepiece_model.h).
  LORA_RETURN_IF_ERROR(CheckNormalizerMaps(model_bytes, name));
  // The library checks much of a model, but some corrupt models make it
  // throw (a piece with no bytes: darts' "zero-length key", found by the
  // sentencepiece fuzz target): that is a bad file too, never a crash.
  sentencepiece::util::Status status;
  try {
    status = sp_->LoadFromSerializedProto(model_bytes);
  } catch (const std::exception& e) {
    sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
    return InvalidArgumentError(
        StrFormat("%s: not a SentencePiece model: %s", name.c_str(), e.what()));
  } catch (...) {
    sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
    return InvalidArgumentError(StrFormat("%s: not a SentencePiece model", name.c_str()));
  }
  if (!status.ok()) {
    return InvalidArgumentError(StrFormat("%s: not a SentencePiece model: %s", name.c_str(),
                                          SpMessage(status).c_str()));
  }
  vocab_size_ = sp_->GetPieceSize();
  if (vocab_size_ <= 0) {
    return InvalidArgumentError(StrFormat("%s: the SentencePiece model has no pieces", name.c_str()));
  }
  bos_id_ = sp_->bos_id();
  eos_id_ = sp_->eos_id();
  unk_id_ = sp_->unk_id();
  if (bos_id_ >= vocab_size_) bos_id_ = -1;
  if (eos_id_ >= vocab_size_) eos_id_ = -1;
  if (unk_id_ >= vocab_size_) unk_id_ = -1;
  int32_t pad = sp_->pad_id();
  if (pad >= 0 && pad < vocab_size_) {
    pad_id_ = pad;
  } else {
    pad_id_ = eos_id_ >= 0 ? eos_id_ : 0;
  }
  if (bos_id_ >= 0) bos_token_ = sp_->IdToPiece(bos_id_);
  if (eos_id_ >= 0) eos_token_ = sp_->IdToPiece(eos_id_);
  for (int32_t id = 0; id < vocab_size_; ++id) {
    if (sp_->IsControl(id) && !sp_->IdToPiece(id).empty()) {
      controls_.emplace_back(sp_->IdToPiece(id), id);
    }
  }
  return OkStatus();
}

Status SentencePieceTokenizer::EncodeRun(std::string_view text, uint32_t offset,
                                         std::vector<int32_t>* ids,
                                         std::vector<TokenSpan>* spans) const {
  if (text.empty()) return OkStatus();
  sentencepiece::ImmutableSentencePieceText spt;
  sentencepiece::util::Status status = sp_->Encode(text, spt.mutable_proto());
  if (!status.ok()) {
    return InvalidArgumentError(
        StrFormat("%s: cannot encode text: %s", path_.c_str(), SpMessage(status).c_str()));
  }
  size_t n = spt.pieces_size();
  for (size_t i = 0; i < n; ++i) {
    auto piece = spt.pieces(static_cast<int>(i));
    ids->push_back(static_cast<int32_t>(piece.id()));
    if (spans != nullptr) {
      spans->push_back(TokenSpan{offset + piece.begin(), offset + piece.end()});
    }
  }
  return OkStatus();
}

// Template text that spells a control piece inside `special_ranges` becomes
// that token; the text between control tokens is encoded run by run, each
// with SentencePiece's own "▁" prefix (as the slow Llama tokenizer encodes
// the text after a special token).
Status SentencePieceTokenizer::EncodeWithSpecial(std::string_view text,
                                                 const std::vector<ByteRange>& special_ranges,
                                                 std::vector<int32_t>* ids,
                                                 std::vector<TokenSpan>* spans) const {
  ids->clear();
  if (spans != nullptr) spans->clear();
  if (text.size() > std::numeric_limits<uint32_t>::max()) {
    return InvalidArgumentError(StrFormat("%s: cannot encode %zu bytes of text in one piece",
                                          path_.c_str(), text.size()));
  }
  size_t run_begin = 0;
  for (const ByteRange& range : special_ranges) {
    size_t pos = range.begin;
    while (pos < range.end && pos < text.size()) {
      int32_t found = -1;
      size_t length = 0;
      for (const auto& [piece, id] : controls_) {
        if (piece.size() > length && pos + piece.size() <= range.end &&
            text.compare(pos, piece.size(), piece) == 0) {
          found = id;
          length = piece.size();
        }
      }
      if (found < 0) {
        ++pos;
        continue;
      }
      LORA_RETURN_IF_ERROR(EncodeRun(text.substr(run_begin, pos - run_begin),
                                     static_cast<uint32_t>(run_begin), ids, spans));
      ids->push_back(found);
      if (spans != nullptr) {
        spans->push_back(
            TokenSpan{static_cast<uint32_t>(pos), static_cast<uint32_t>(pos + length)});
      }
      pos += length;
      run_begin = pos;
    }
  }
  return EncodeRun(text.substr(run_begin), static_cast<uint32_t>(run_begin), ids, spans);
}

StatusOr<std::string> SentencePieceTokenizer::Decode(const std::vector<int32_t>& ids) const {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size_) {
      return InvalidArgumentError(StrFormat("%s: token %zu: id %d is outside the vocabulary [0, %d)",
                                            path_.c_str(), i, ids[i], vocab_size_));
    }
  }
  std::vector<int> in(ids.begin(), ids.end());
  std::string text;
  sentencepiece::util::Status status = sp_->Decode(in, &text);
  if (!status.ok()) {
    return InvalidArgumentError(
        StrFormat("%s: cannot decode: %s", path_.c_str(), SpMessage(status).c_str()));
  }
  return text;
}

StatusOr<std::string> SentencePieceTokenizer::DecodeWithControls(
    const std::vector<int32_t>& ids) const {
  std::string out;
  std::vector<int32_t> run;
  auto flush = [&]() -> Status {
    if (run.empty()) return OkStatus();
    LORA_ASSIGN_OR_RETURN(std::string text, Decode(run));
    out += text;
    run.clear();
    return OkStatus();
  };
  for (int32_t id : ids) {
    if (IsControl(id)) {
      LORA_RETURN_IF_ERROR(flush());
      out += sp_->IdToPiece(id);
    } else {
      run.push_back(id);
    }
  }
  LORA_RETURN_IF_ERROR(flush());
  return out;
}

}  // namespace

bool InByteRanges(const std::vector<ByteRange>& ranges, uint32_t begin, uint32_t end) {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), begin,
                             [](uint32_t v, const ByteRange& r) { return v < r.begin; });
  if (it == ranges.begin()) return false;
  --it;
  return begin >= it->begin && end <= it->end;
}

Tokenizer::~Tokenizer() = default;

// The special tokens of tokenizer_config.json, for either kind of tokenizer.
Status Tokenizer::LoadSpecialTokens(std::string_view config_text, const std::string& config_name) {
  Json root;
  LORA_RETURN_IF_ERROR(ParseJson(config_text, config_name, "tokenizer config", &root));
  hf::JsonFields f(config_name);
  LORA_RETURN_IF_ERROR(f.ExpectObject(root, ""));
  // A name: "<s>", {"content": "<s>", ...} or null/absent ("" then).
  // An explicit null is present: the model has no such token.
  auto name = [&](const char* key, std::string* out, bool* present) -> Status {
    *present = root.find(key) != root.end();
    const Json* v = f.Find(root, key);
    out->clear();
    if (v == nullptr) return OkStatus();
    if (v->is_object()) return f.GetString(*v, key, "content", true, out);
    return f.AsString(*v, key, out);
  };
  // BOS and EOS must be tokens of the tokenizer: transformers would add an
  // unknown one as a new token, which the model's embeddings do not have.
  auto known = [&](const char* key, const std::string& text, int32_t* id) -> Status {
    *id = text.empty() ? -1 : PieceToId(text);
    if (!text.empty() && *id < 0) {
      return f.Error(key, StrFormat("%s is not a token of %s", Quote(text).c_str(), path_.c_str()));
    }
    return OkStatus();
  };
  std::string text;
  bool present;
  LORA_RETURN_IF_ERROR(name("bos_token", &text, &present));
  if (present) {
    bos_token_ = text;
    LORA_RETURN_IF_ERROR(known("bos_token", text, &bos_id_));
  }
  LORA_RETURN_IF_ERROR(name("eos_token", &text, &present));
  if (present) {
    eos_token_ = text;
    LORA_RETURN_IF_ERROR(known("eos_token", text, &eos_id_));
  }
  LORA_RETURN_IF_ERROR(name("unk_token", &text, &present));
  if (present && PieceToId(text) >= 0) unk_id_ = PieceToId(text);
  // An unknown pad token is not an error: pad positions carry no loss and
  // are never attended to, so any id serves (the caller falls back to EOS).
  LORA_RETURN_IF_ERROR(name("pad_token", &text, &present));
  if (present) pad_id_ = !text.empty() ? PieceToId(text) : -1;
  return OkStatus();
}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path) {
  if (IsDirectory(path)) {
    std::string json = JoinPath(path, "tokenizer.json");
    std::string model = JoinPath(path, "tokenizer.model");
    std::string config = JoinPath(path, "tokenizer_config.json");
    if (Exists(json)) return LoadHfTokenizer(json, Exists(config) ? config : "");
    if (!Exists(model)) {
      return NotFoundError(StrFormat(
          "%s: no tokenizer: the model directory needs tokenizer.json (Hugging Face tokenizers) "
          "or tokenizer.model (SentencePiece); copy them from the model's Hub repository",
          path.c_str()));
    }
    MappedFile mapped;
    LORA_RETURN_IF_ERROR(mapped.Open(model));
    LORA_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> sp, FromBytes(mapped.view(), model));
    // transformers' LlamaTokenizer takes BOS, EOS and pad from
    // tokenizer_config.json beside a tokenizer.model too.
    if (Exists(config)) {
      LORA_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(config));
      LORA_RETURN_IF_ERROR(sp->LoadSpecialTokens(text, config));
      if (sp->pad_id_ < 0) sp->pad_id_ = sp->eos_id_ >= 0 ? sp->eos_id_ : 0;
    }
    return sp;
  }
  if (!Exists(path)) {
    return NotFoundError(StrFormat(
        "%s: no such file (a tokenizer is a model directory, its tokenizer.json or its "
        "tokenizer.model)",
        path.c_str()));
  }
  if (EndsWith(path, ".json")) {
    std::string dir = path.substr(0, path.find_last_of('/') + 1);
    std::string config = (dir.empty() ? std::string(".") : dir) + "/tokenizer_config.json";
    return LoadHfTokenizer(path, Exists(config) ? config : "");
  }
  MappedFile mapped;
  LORA_RETURN_IF_ERROR(mapped.Open(path));
  return FromBytes(mapped.view(), path);
}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromBytes(std::string_view model_bytes,
                                                          const std::string& name) {
  auto tokenizer = std::make_unique<SentencePieceTokenizer>();
  LORA_RETURN_IF_ERROR(tokenizer->Init(model_bytes, name));
  return std::unique_ptr<Tokenizer>(std::move(tokenizer));
}

StatusOr<std::string> TrainTokenizerFromLines(const std::vector<std::string>& lines,
                                              const TokenizerTrainOptions& options) {
  if (options.model_type != "unigram" && options.model_type != "bpe") {
    return InvalidArgumentError(StrFormat("tokenizer model type %s must be 'unigram' or 'bpe'",
                                          Quote(options.model_type).c_str()));
  }
  if (options.vocab_size <= 3) {
    return InvalidArgumentError(
        StrFormat("tokenizer vocab size %d must be larger than 3", options.vocab_size));
  }
  std::string symbols;
  for (const std::string& s : options.user_defined_symbols) {
    if (s.empty() || s.find(',') != std::string::npos) {
      return InvalidArgumentError(StrFormat(
          "user-defined symbol %s must be non-empty and hold no ','", Quote(s).c_str()));
    }
    if (!symbols.empty()) symbols += ",";
    symbols += s;
  }
  if (lines.empty()) return InvalidArgumentError("no text to train a tokenizer on");

  std::unordered_map<std::string, std::string> args = {
      {"model_type", options.model_type},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"byte_fallback", options.byte_fallback ? "true" : "false"},
      {"character_coverage", "1.0"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "true"},
      {"split_digits", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      // Determinism: one thread, every line, in order.
      {"num_threads", "1"},
      {"shuffle_input_sentence", "false"},
      {"input_sentence_size", "0"},
      {"max_sentence_length", std::to_string(options.max_sentence_length)},
      {"minloglevel", "2"},  // errors come back as the status; no progress log
  };
  if (!symbols.empty()) args["user_defined_symbols"] = symbols;
  sentencepiece::SetRandomGeneratorSeed(options.seed);
  LinesIterator iterator(&lines);
  std::string model;
  sentencepiece::util::Status status =
      sentencepiece::SentencePieceTrainer::Train(args, &iterator, &model);
  if (!status.ok()) {
    return InvalidArgumentError(
        StrFormat("training a %s tokenizer with %d pieces failed: %s", options.model_type.c_str(),
                  options.vocab_size, SpMessage(status).c_str()));
  }
  return model;
}

Status TrainTokenizer(const std::string& text_path, const std::string& model_path,
                      const TokenizerTrainOptions& options) {
  MappedFile file;
  LORA_RETURN_IF_ERROR(file.Open(text_path));
  std::vector<std::string> lines;
  std::string_view text = file.view();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) lines.emplace_back(line);
    pos = end + 1;
  }
  if (lines.empty()) {
    return InvalidArgumentError(
        StrFormat("%s: no text to train a tokenizer on (the file is empty)", text_path.c_str()));
  }
  StatusOr<std::string> model = TrainTokenizerFromLines(lines, options);
  if (!model.ok()) {
    Status status = model.status();
    return status.WithContext(text_path);
  }
  // Write to a temporary name and rename, so a crash leaves no half model.
  std::string tmp = model_path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    return InvalidArgumentError(
        StrFormat("%s: cannot write: %s", model_path.c_str(), std::strerror(errno)));
  }
  size_t written = std::fwrite(model->data(), 1, model->size(), f);
  bool ok = written == model->size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), model_path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    return InvalidArgumentError(
        StrFormat("%s: cannot write: %s", model_path.c_str(), std::strerror(err)));
  }
  return OkStatus();
}

}  // namespace data
}  // namespace lorart
