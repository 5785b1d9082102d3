// Tokenization: the Tokenizer interface with its SentencePiece
// implementation (the tokenizer.model of Llama-2-era model directories; the
// Hugging Face tokenizer.json one is in hf_tokenizer.h), and training a
// SentencePiece model from text.
#ifndef LORART_DATA_TOKENIZER_H_
#define LORART_DATA_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lorart/base/status.h"

namespace lorart {
namespace data {

// Bytes [begin, end) of the text a token was encoded from. With
// SentencePiece, a token that adds text of its own (the leading "▁" it adds
// to every input) or the first bytes of a character split by byte fallback
// has begin == end; with tokenizer.json, spans are the `tokenizers` offsets
// in bytes (each byte-fallback token spans its whole character).
struct TokenSpan {
  uint32_t begin = 0;
  uint32_t end = 0;
};

// Bytes [begin, end) of a text.
struct ByteRange {
  uint32_t begin = 0;
  uint32_t end = 0;
};

// Whether bytes [begin, end) lie inside one of `ranges` (sorted, disjoint).
bool InByteRanges(const std::vector<ByteRange>& ranges, uint32_t begin, uint32_t end);

// One interface, two implementations: SentencePiece `tokenizer.model`
// (SentencePieceTokenizer, tokenizer.cc) and Hugging Face `tokenizer.json`
// (HfTokenizer, hf_tokenizer.cc). Every method is thread-safe.
class Tokenizer {
 public:
  // Loads the tokenizer of a model directory, preferring `tokenizer.json`
  // (as transformers' fast tokenizers do) and falling back to
  // `tokenizer.model`; the special-token names (bos_token, eos_token, ...)
  // come from `tokenizer_config.json` when it is there. `path` may also name
  // one file: a `.json` file is read as tokenizer.json, anything else as a
  // SentencePiece model. A directory with neither file is NOT_FOUND naming
  // both; a file that cannot be read is INVALID_ARGUMENT naming it.
  static StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& path);
  // A SentencePiece model from the bytes of a model file; `name` stands for
  // the path in messages.
  static StatusOr<std::unique_ptr<Tokenizer>> FromBytes(std::string_view model_bytes,
                                                        const std::string& name);
  virtual ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // "sentencepiece" or "tokenizers".
  virtual const char* kind() const = 0;

  // Token ids of `text` as the model's tokenizer encodes it with
  // add_special_tokens=False (no BOS or EOS added). Special tokens ("<s>",
  // "<|im_start|>") are recognised only where their whole text lies inside
  // one of `special_ranges` (sorted, disjoint byte ranges of `text`: the
  // text a chat template wrote itself); anywhere else their text is encoded
  // as ordinary text. Added tokens that are not special are recognised
  // everywhere, as Hugging Face tokenizers do. `spans` (may be null) gets
  // each token's bytes in `text`.
  virtual Status EncodeWithSpecial(std::string_view text,
                                   const std::vector<ByteRange>& special_ranges,
                                   std::vector<int32_t>* ids,
                                   std::vector<TokenSpan>* spans) const = 0;
  // The same with no special token recognised: data is encoded as text.
  Status Encode(std::string_view text, std::vector<int32_t>* ids) const {
    return EncodeWithSpecial(text, {}, ids, nullptr);
  }
  Status Encode(std::string_view text, std::vector<int32_t>* ids,
                std::vector<TokenSpan>* spans) const {
    return EncodeWithSpecial(text, {}, ids, spans);
  }

  // The ids the tokenizer adds around one encoded sequence when asked for
  // special tokens (Hugging Face add_special_tokens=True: the
  // post-processor's TemplateProcessing; SentencePiece Llama: BOS before).
  virtual void SpecialTokensAround(std::vector<int32_t>* prefix,
                                   std::vector<int32_t>* suffix) const = 0;

  // Text of `ids`; special tokens (BOS, EOS, pad, <|im_end|>) decode to
  // nothing. Ids outside [0, vocab_size) are INVALID_ARGUMENT.
  virtual StatusOr<std::string> Decode(const std::vector<int32_t>& ids) const = 0;
  // For tests and logs: special tokens are written as their text ("<s>",
  // "<|im_end|>"). A document rendered by a chat template decodes to its
  // template string.
  virtual StatusOr<std::string> DecodeWithControls(const std::vector<int32_t>& ids) const = 0;

  // The piece of `id` ("▁the", "Ġthe", "<0x0A>", "<s>"), "" out of range.
  virtual std::string IdToPiece(int32_t id) const = 0;
  // The id of a piece or added token spelled exactly `piece`, -1 if none.
  virtual int32_t PieceToId(std::string_view piece) const = 0;
  // A special (control) token: BOS, EOS, pad, an added token marked special.
  virtual bool IsControl(int32_t id) const = 0;

  int32_t vocab_size() const { return vocab_size_; }
  int32_t bos_id() const { return bos_id_; }  // -1 when the model has none
  int32_t eos_id() const { return eos_id_; }  // -1 when the model has none
  int32_t unk_id() const { return unk_id_; }  // -1 when the model has none
  // The model's pad id; without one (Llama's tokenizer.model has none) EOS,
  // without that 0. Pad positions never carry loss, so any id would do.
  int32_t pad_id() const { return pad_id_; }
  // The texts of those tokens ("<s>", "<|im_end|>"), "" when there is none:
  // what a chat template sees as bos_token / eos_token.
  const std::string& bos_token() const { return bos_token_; }
  const std::string& eos_token() const { return eos_token_; }
  // The file the tokenizer was read from.
  const std::string& path() const { return path_; }

 protected:
  Tokenizer() = default;
  // BOS, EOS, unk and pad from tokenizer_config.json's text (a name, an
  // {"content": ...} object or null): BOS and EOS must be tokens of this
  // tokenizer; a null one means the model has none. Errors name the file.
  Status LoadSpecialTokens(std::string_view config_text, const std::string& config_name);

  std::string path_;
  int32_t vocab_size_ = 0;
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  int32_t unk_id_ = -1;
  int32_t pad_id_ = 0;
  std::string bos_token_;
  std::string eos_token_;
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
