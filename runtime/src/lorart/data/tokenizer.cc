#include "lorart/data/tokenizer.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <utility>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "lorart/base/strings.h"
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

}  // namespace

Tokenizer::Tokenizer() : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}
Tokenizer::~Tokenizer() = default;

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path) {
  std::string file = path;
  if (IsDirectory(path)) {
    file = JoinPath(path, "tokenizer.model");
    if (!Exists(file)) {
      std::string hint;
      if (Exists(JoinPath(path, "tokenizer.json"))) {
        hint = "; tokenizer.json (Hugging Face tokenizers) is not supported yet";
      }
      return NotFoundError(StrFormat("%s: no such file (the model directory needs a "
                                     "SentencePiece tokenizer.model%s)",
                                     file.c_str(), hint.c_str()));
    }
  } else if (!Exists(path)) {
    return NotFoundError(StrFormat("%s: no such file (the model directory needs a SentencePiece "
                                   "tokenizer.model)",
                                   path.c_str()));
  }
  MappedFile mapped;
  LORA_RETURN_IF_ERROR(mapped.Open(file));
  return FromBytes(mapped.view(), file);
}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromBytes(std::string_view model_bytes,
                                                          const std::string& name) {
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer());
  if (model_bytes.empty()) {
    return InvalidArgumentError(
        StrFormat("%s: not a SentencePiece model: the file is empty", name.c_str()));
  }
  sentencepiece::util::Status status = tokenizer->sp_->LoadFromSerializedProto(model_bytes);
  if (!status.ok()) {
    return InvalidArgumentError(StrFormat("%s: not a SentencePiece model: %s", name.c_str(),
                                          SpMessage(status).c_str()));
  }
  LORA_RETURN_IF_ERROR(tokenizer->Init(name));
  return tokenizer;
}

Status Tokenizer::Init(const std::string& path) {
  path_ = path;
  vocab_size_ = sp_->GetPieceSize();
  if (vocab_size_ <= 0) {
    return InvalidArgumentError(StrFormat("%s: the SentencePiece model has no pieces", path.c_str()));
  }
  bos_id_ = sp_->bos_id();
  eos_id_ = sp_->eos_id();
  unk_id_ = sp_->unk_id();
  if (bos_id_ >= vocab_size_) bos_id_ = -1;
  if (eos_id_ >= vocab_size_) eos_id_ = -1;
  int32_t pad = sp_->pad_id();
  if (pad >= 0 && pad < vocab_size_) {
    pad_id_ = pad;
  } else {
    pad_id_ = eos_id_ >= 0 ? eos_id_ : 0;
  }
  return OkStatus();
}

Status Tokenizer::Encode(std::string_view text, std::vector<int32_t>* ids) const {
  ids->clear();
  std::vector<int> out;
  sentencepiece::util::Status status = sp_->Encode(text, &out);
  if (!status.ok()) {
    return InvalidArgumentError(
        StrFormat("%s: cannot encode text: %s", path_.c_str(), SpMessage(status).c_str()));
  }
  ids->assign(out.begin(), out.end());
  return OkStatus();
}

Status Tokenizer::Encode(std::string_view text, std::vector<int32_t>* ids,
                         std::vector<TokenSpan>* spans) const {
  ids->clear();
  spans->clear();
  if (text.size() > std::numeric_limits<uint32_t>::max()) {
    return InvalidArgumentError(StrFormat("%s: cannot encode %zu bytes of text in one piece",
                                          path_.c_str(), text.size()));
  }
  sentencepiece::ImmutableSentencePieceText spt;
  sentencepiece::util::Status status = sp_->Encode(text, spt.mutable_proto());
  if (!status.ok()) {
    return InvalidArgumentError(
        StrFormat("%s: cannot encode text: %s", path_.c_str(), SpMessage(status).c_str()));
  }
  size_t n = spt.pieces_size();
  ids->reserve(n);
  spans->reserve(n);
  for (size_t i = 0; i < n; ++i) {
    auto piece = spt.pieces(static_cast<int>(i));
    ids->push_back(static_cast<int32_t>(piece.id()));
    spans->push_back(TokenSpan{piece.begin(), piece.end()});
  }
  return OkStatus();
}

StatusOr<std::string> Tokenizer::Decode(const std::vector<int32_t>& ids) const {
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

StatusOr<std::string> Tokenizer::DecodeWithControls(const std::vector<int32_t>& ids) const {
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
    if (id >= 0 && id < vocab_size_ && sp_->IsControl(id)) {
      LORA_RETURN_IF_ERROR(flush());
      out += sp_->IdToPiece(id);
    } else {
      run.push_back(id);
    }
  }
  LORA_RETURN_IF_ERROR(flush());
  return out;
}

std::string Tokenizer::IdToPiece(int32_t id) const {
  if (id < 0 || id >= vocab_size_) return "";
  return sp_->IdToPiece(id);
}

bool Tokenizer::IsControl(int32_t id) const {
  return id >= 0 && id < vocab_size_ && sp_->IsControl(id);
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
