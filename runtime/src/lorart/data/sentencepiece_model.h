// Checks of a SentencePiece tokenizer.model that the sentencepiece library
// does not make before trusting it. The library parses the protobuf and
// checks the pieces, but reads a normalizer's precompiled character map (a
// Darts double-array trie and a block of NUL-terminated replacement strings)
// without bounds: a corrupt map makes Encode read outside the model (found by
// the `sentencepiece` fuzz target). CheckNormalizerMaps walks every path the
// library's trie lookup can take and refuses a map where one leaves the trie,
// a value points outside the strings, or the strings are not NUL-terminated.
// It reads the two fields it needs from the protobuf wire format by hand:
// Debian ships no protobuf headers with sentencepiece, and two fields do not
// warrant a schema compiler.
#ifndef LORART_DATA_SENTENCEPIECE_MODEL_H_
#define LORART_DATA_SENTENCEPIECE_MODEL_H_

#include <string>
#include <string_view>

#include "lorart/base/status.h"

namespace lorart {
namespace data {

// OK for a model whose normalizer and denormalizer maps (ModelProto fields 3
// and 5, NormalizerSpec.precompiled_charsmap) are absent or safe to walk;
// INVALID_ARGUMENT naming `name` otherwise. A model the protobuf reader
// cannot follow is left to the library's own parser (OK here).
Status CheckNormalizerMaps(std::string_view model, const std::string& name);

// The same for one precompiled character map.
Status CheckCharsMap(std::string_view map);

}  // namespace data
}  // namespace lorart

#endif  // LORART_DATA_SENTENCEPIECE_MODEL_H_
