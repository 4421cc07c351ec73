#include "formats/utf8.h"

#include <cstdint>

namespace illm::formats {
namespace {

bool is_trail_byte(unsigned char c) { return (c & 0xC0) == 0x80; }

}  // namespace

// Length of the well-formed UTF-8 character at the start of `s` (no overlongs, no surrogates, at most
// U+10FFFF), or 0 when it is malformed: SentencePiece's IsValidDecodeUTF8.
size_t valid_utf8_length(std::string_view s) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  if (s.empty()) return 0;
  const unsigned char lead = b(0);
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0 && s.size() >= 2 && is_trail_byte(b(1))) {
    const uint32_t cp = ((lead & 0x1Fu) << 6) | (b(1) & 0x3Fu);
    return cp >= 0x80 ? 2 : 0;
  }
  if ((lead & 0xF0) == 0xE0 && s.size() >= 3 && is_trail_byte(b(1)) && is_trail_byte(b(2))) {
    const uint32_t cp = ((lead & 0x0Fu) << 12) | ((b(1) & 0x3Fu) << 6) | (b(2) & 0x3Fu);
    return (cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) ? 3 : 0;
  }
  if ((lead & 0xF8) == 0xF0 && s.size() >= 4 && is_trail_byte(b(1)) && is_trail_byte(b(2)) &&
      is_trail_byte(b(3))) {
    const uint32_t cp =
        ((lead & 0x07u) << 18) | ((b(1) & 0x3Fu) << 12) | ((b(2) & 0x3Fu) << 6) | (b(3) & 0x3Fu);
    return (cp >= 0x10000 && cp <= 0x10FFFF) ? 4 : 0;
  }
  return 0;
}
size_t first_non_text_byte(std::string_view s) {
  size_t offset = 0;
  while (offset < s.size()) {
    const size_t length = s[offset] == '\0' ? 0 : valid_utf8_length(s.substr(offset));
    if (length == 0) return offset;
    offset += length;
  }
  return std::string_view::npos;
}

}  // namespace illm::formats
