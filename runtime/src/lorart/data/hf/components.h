// The components of a tokenizer.json pipeline — normalizer → pre-tokenizer
// → (model, bpe_model.h) → post-processor → decoder — one small class per
// `tokenizers` type, each made by a factory from its JSON object.
#ifndef LORART_DATA_HF_COMPONENTS_H_
#define LORART_DATA_HF_COMPONENTS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lorart/base/status.h"
#include "lorart/data/hf/json_fields.h"
#include "lorart/data/hf/normalized_string.h"
#include "lorart/io/json.h"

namespace lorart {
namespace data {
namespace hf {

// ---- Normalizers -----------------------------------------------------------
class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual Status Normalize(NormalizedString* s) const = 0;
};
// `json` is the "normalizer" value at `path`; null gives a null pointer.
StatusOr<std::unique_ptr<Normalizer>> MakeNormalizer(const JsonFields& f, const Json& json,
                                                     const std::string& path);

// ---- Pre-tokenizers --------------------------------------------------------
// What a pre-tokenizer needs to know of the whole pipeline.
struct PreTokenizerTraits {
  bool needs_alignment = false;  // reads where pieces start in the input (Metaspace "first")
};
class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits every piece of `splits` further (and may rewrite them); empty
  // pieces are dropped.
  virtual Status PreTokenize(std::vector<NormalizedString>* splits) const = 0;
  virtual void AddTraits(PreTokenizerTraits* traits) const { (void)traits; }
};
StatusOr<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const JsonFields& f, const Json& json,
                                                         const std::string& path);

// ---- Post-processors -------------------------------------------------------
// A token as the post-processor sees it: its text (the vocabulary piece, or
// the matched text of an added token) and its span in the input.
struct EncodedToken {
  int32_t id;
  std::string_view value;
  uint32_t begin, end;
};
class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Ids added around one sequence with add_special_tokens=True.
  virtual void SpecialTokensAround(std::vector<int32_t>* prefix,
                                   std::vector<int32_t>* suffix) const = 0;
  // Rewrites spans as the processor does with add_special_tokens=False
  // (ByteLevel's trim_offsets). `text` is the input.
  virtual void ProcessSpans(std::string_view text, std::vector<EncodedToken>* tokens) const {
    (void)text, (void)tokens;
  }
};
StatusOr<std::unique_ptr<PostProcessor>> MakePostProcessor(const JsonFields& f, const Json& json,
                                                           const std::string& path);

// ---- Decoders --------------------------------------------------------------
class Decoder {
 public:
  virtual ~Decoder() = default;
  // `tokens` -> decoded pieces (Decoder::decode_chain); the text is their
  // concatenation.
  virtual Status DecodeChain(std::vector<std::string>* tokens) const = 0;
};
StatusOr<std::unique_ptr<Decoder>> MakeDecoder(const JsonFields& f, const Json& json,
                                               const std::string& path);

// How far a text of `size` bytes may grow in one normalizer, pre-tokenizer
// or decoder, in a Sequence of them, or through the whole encoding. Real
// pipelines grow text a few times at most (NFKD, Replace " " -> "▁",
// ByteLevel); a tokenizer.json that repeats a growth (a Sequence of Replace
// "a" -> "aa", of ByteLevel normalizers) would grow it exponentially.
inline size_t MaxGrownSize(size_t size) { return 64 * size + (size_t{64} << 10); }
// INVALID_ARGUMENT "{what} would grow a text of {from} bytes to {to} bytes ...".
Status GrowthError(const char* what, size_t from, size_t to);

// "{path}: {kind} type '{type}' is not supported (lorart reads ...)".
Status UnsupportedType(const JsonFields& f, const std::string& path, const char* kind,
                       const std::string& type, const char* supported);

// The pattern of Split / Replace ({"String": s} or {"Regex": r}), compiled.
class Regex;
StatusOr<std::unique_ptr<Regex>> MakePattern(const JsonFields& f, const Json& object,
                                             const std::string& path);

}  // namespace hf
}  // namespace data
}  // namespace lorart

#endif  // LORART_DATA_HF_COMPONENTS_H_
