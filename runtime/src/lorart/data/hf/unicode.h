// UTF-8 and Unicode character classes for the tokenizer.json pipeline, with
// the semantics of the Rust functions Hugging Face `tokenizers` calls
// (char::is_whitespace, char::is_numeric, char::to_lowercase, ...).
#ifndef LORART_DATA_HF_UNICODE_H_
#define LORART_DATA_HF_UNICODE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lorart {
namespace data {
namespace hf {

// Byte offset of the first invalid UTF-8 sequence of `s` (overlongs,
// surrogates and code points above U+10FFFF are invalid, as in Rust), or
// npos when `s` is valid.
size_t FindInvalidUtf8(std::string_view s);

// Length of the UTF-8 sequence starting with byte `b` of VALID text.
inline size_t Utf8Len(unsigned char b) {
  return b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : 4;
}
// Decodes the character at s[i] of VALID text; *len gets its byte length.
char32_t DecodeUtf8(std::string_view s, size_t i, size_t* len);
// Appends the UTF-8 encoding of `c`.
void AppendUtf8(char32_t c, std::string* out);
inline size_t Utf8Size(char32_t c) { return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4; }
// Characters of valid UTF-8 text.
std::vector<char32_t> DecodeAll(std::string_view s);
// Number of characters of valid UTF-8 text.
size_t CountChars(std::string_view s);

// Rust's String::from_utf8_lossy: each maximal invalid subpart becomes U+FFFD.
std::string FromUtf8Lossy(std::string_view bytes);

// Unicode White_Space (Rust char::is_whitespace; regex \s of Oniguruma).
bool IsWhitespace(char32_t c);
// Rust char::is_numeric: general category Nd, Nl or No.
bool IsNumeric(char32_t c);
// The Punctuation pre-tokenizer's test: ASCII punctuation or category P*.
bool IsPunctuation(char32_t c);
// Rust `regex` \w: Alphabetic, M, Nd, Pc, Join_Control.
bool IsWordChar(char32_t c);
// Rust char::to_lowercase (full mapping: U+0130 lowercases to two chars).
void ToLowerFull(char32_t c, std::vector<char32_t>* out);

enum class NormalForm { kNFC, kNFD, kNFKC, kNFKD };
// Normalizes `s` (valid UTF-8). `changes` (may be null) gets, for each
// character of the result, the change code of NormalizedString::transform
// (0 replaces a character, 1 inserts one, -n replaces one and removes n).
// Returns false only if utf8proc fails (out of memory).
bool Normalize(std::string_view s, NormalForm form, std::string* out,
               std::vector<std::pair<char32_t, int>>* changes);

}  // namespace hf
}  // namespace data
}  // namespace lorart

#endif  // LORART_DATA_HF_UNICODE_H_
