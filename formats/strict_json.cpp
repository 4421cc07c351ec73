#include "formats/strict_json.h"

#include <set>
#include <vector>

#include "kernels/error.h"

namespace illm::formats {

using nlohmann::json;

json parse_json_strictly(std::string_view text, StrictJsonProblem* problem) {
  *problem = {};
  std::vector<std::set<std::string>> keys_per_depth;  // keys seen in the object open at each depth
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    const size_t level = static_cast<size_t>(depth);
    if (depth > kMaxJsonDepth) problem->too_deep = true;
    if (event == json::parse_event_t::object_start) {
      if (keys_per_depth.size() <= level + 1) keys_per_depth.resize(level + 2);
      keys_per_depth[level + 1].clear();
    } else if (event == json::parse_event_t::key) {
      if (keys_per_depth.size() <= level) keys_per_depth.resize(level + 1);
      std::string key = parsed.get<std::string>();
      if (!keys_per_depth[level].insert(key).second && problem->duplicate_key.empty())
        problem->duplicate_key = std::move(key);
    }
    return !problem->too_deep;  // stop building values once too deep (the parse still checks the syntax)
  };
  return json::parse(text.begin(), text.end(), callback);
}

json parse_json_strictly_or_throw(std::string_view text, const std::string& source, const std::string& what) {
  StrictJsonProblem problem;
  json value;
  try {
    value = parse_json_strictly(text, &problem);
  } catch (const json::exception& e) {
    throw Error(source + ": " + what + " is not well-formed JSON: " + e.what());
  }
  if (problem.too_deep)
    throw Error(source + ": " + what + " nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  if (!problem.duplicate_key.empty())
    throw Error(source + ": " + what + ": key \"" + problem.duplicate_key + "\" appears twice in one object");
  return value;
}

}  // namespace illm::formats
