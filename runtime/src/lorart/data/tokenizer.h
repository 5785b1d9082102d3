// SentencePiece tokenization (the tokenizer.model of Llama-family model
// directories), and training a SentencePiece model from text.
#ifndef LORART_DATA_TOKENIZER_H_
#define LORART_DATA_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lorart/base/status.h"

namespace sentencepiece {
class SentencePieceProcessor;
}  // namespace sentencepiece

namespace lorart {
namespace data {

// Bytes [begin, end) of the text a token was encoded from. A token that adds
// text of its own (the leading "▁" SentencePiece adds to every input) or the
// first bytes of a character split by byte fallback has begin == end.
struct TokenSpan {
  uint32_t begin = 0;
  uint32_t end = 0;
};

class Tokenizer {
 public:
  // Loads a SentencePiece model: `path` is a model file or a directory
  // holding `tokenizer.model`. A missing file is NOT_FOUND
  // "DIR/tokenizer.model: no such file (the model directory needs a
  // SentencePiece tokenizer.model)"; anything SentencePiece cannot load is
  // INVALID_ARGUMENT naming the path.
  static StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& path);
  // From the bytes of a model file; `name` stands for the path in messages.
  static StatusOr<std::unique_ptr<Tokenizer>> FromBytes(std::string_view model_bytes,
                                                        const std::string& name);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids of `text`, without BOS or EOS. SentencePiece's own rules apply
  // (for Llama models: a "▁" prefix, spaces as "▁", unknown characters as
  // byte tokens). Text that spells a control token ("<s>") is encoded as
  // text, never as the control token. Thread-safe.
  Status Encode(std::string_view text, std::vector<int32_t>* ids) const;
  // The same with each token's byte span in `text`.
  Status Encode(std::string_view text, std::vector<int32_t>* ids,
                std::vector<TokenSpan>* spans) const;

  // Text of `ids`; control tokens (BOS, EOS, pad) decode to nothing. Ids
  // outside [0, vocab_size) are INVALID_ARGUMENT.
  StatusOr<std::string> Decode(const std::vector<int32_t>& ids) const;
  // For tests and logs: control tokens are written as their piece ("<s>",
  // "</s>") and the text between them is decoded run by run, so each run
  // loses the "▁" prefix SentencePiece added when it was encoded on its own.
  // A document rendered by a chat template decodes to its template string.
  StatusOr<std::string> DecodeWithControls(const std::vector<int32_t>& ids) const;

  // The piece of `id` ("▁the", "<0x0A>", "<s>"), "" out of range.
  std::string IdToPiece(int32_t id) const;
  bool IsControl(int32_t id) const;

  int32_t vocab_size() const { return vocab_size_; }
  int32_t bos_id() const { return bos_id_; }  // -1 when the model has none
  int32_t eos_id() const { return eos_id_; }  // -1 when the model has none
  int32_t unk_id() const { return unk_id_; }
  // The model's pad id; without one (Llama's tokenizer.model has none) EOS,
  // without that 0. Pad positions never carry loss, so any id would do.
  int32_t pad_id() const { return pad_id_; }
  const std::string& path() const { return path_; }

 private:
  Tokenizer();
  Status Init(const std::string& path);

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string path_;
  int32_t vocab_size_ = 0;
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  int32_t unk_id_ = -1;
  int32_t pad_id_ = 0;
};

// Settings for TrainTokenizer. The defaults follow Llama's tokenizer.model:
// ids 0/1/2 = <unk>/<s>/</s>, no pad piece, identity normalization (text is
// kept byte for byte: newlines, runs of spaces), a "▁" prefix, digits split,
// byte fallback (no character is ever <unk>), character coverage 1.0.
struct TokenizerTrainOptions {
  int32_t vocab_size = 8000;  // with byte fallback: 3 specials + 256 bytes + learned pieces
  std::string model_type = "unigram";  // or "bpe"
  std::vector<std::string> user_defined_symbols;  // always one token each
  bool byte_fallback = true;
  // Training is single-threaded and reads every line in order, so a corpus
  // and these options always give the same model; the seed is set anyway.
  uint32_t seed = 0;
  // Lines longer than this many bytes are skipped by SentencePiece.
  int32_t max_sentence_length = 4192;
};

// Trains a SentencePiece model on a text file (one sentence or paragraph per
// line) and writes it to `model_path` (e.g. "DIR/tokenizer.model"; only that
// file is written). Errors name the input or output path; a corpus too small
// for `vocab_size` pieces fails with SentencePiece's "Vocabulary size too
// high" message.
Status TrainTokenizer(const std::string& text_path, const std::string& model_path,
                      const TokenizerTrainOptions& options);
// The same from lines in memory (a line may hold "\n"); returns the model
// bytes instead of writing them.
StatusOr<std::string> TrainTokenizerFromLines(const std::vector<std::string>& lines,
                                              const TokenizerTrainOptions& options);

}  // namespace data
}  // namespace lorart

#endif  // LORART_DATA_TOKENIZER_H_
