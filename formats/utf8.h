#pragma once
// UTF-8 well-formedness, as SentencePiece judges it (IsValidDecodeUTF8): no overlong forms, no UTF-16 surrogates,
// nothing beyond U+10FFFF. Shared by the tokenizer's decoder and the text dataset check.
#include <cstddef>
#include <string_view>

namespace illm::formats {

// Length of the well-formed UTF-8 character at the start of `s`, or 0 when it is malformed (or `s` is empty).
size_t valid_utf8_length(std::string_view s);

// Offset of the first byte of `s` that starts no well-formed character or is NUL; npos when `s` is clean text.
size_t first_non_text_byte(std::string_view s);

}  // namespace illm::formats
