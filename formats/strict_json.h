#pragma once
// JSON parsing for the files a user hands the tool (config.json, recipes, safetensors headers and indexes, dataset
// lines). nlohmann::json keeps the last of two equal keys silently; here a repeated key within one object is an
// error, as is nesting deeper than kMaxJsonDepth (no input of ours nests more than a few levels).
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace illm::formats {

inline constexpr int kMaxJsonDepth = 64;

struct StrictJsonProblem {
  std::string duplicate_key;  // the first key repeated within one object, "" when none
  bool too_deep = false;      // nesting beyond kMaxJsonDepth
  bool ok() const { return duplicate_key.empty() && !too_deep; }
};

// Parses `text`; syntax errors throw nlohmann::json::exception (callers add the file name), the problems above are
// returned in `problem` (the returned value is then not to be used).
nlohmann::json parse_json_strictly(std::string_view text, StrictJsonProblem* problem);

// The same, with every failure as illm::Error "<source>: <what> ...": not well-formed JSON, "key \"x\" appears
// twice in one object", too deeply nested.
nlohmann::json parse_json_strictly_or_throw(std::string_view text, const std::string& source, const std::string& what);

}  // namespace illm::formats
