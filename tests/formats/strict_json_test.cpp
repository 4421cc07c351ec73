// Strict JSON (formats/strict_json.h): a key repeated within one object and absurd nesting are refused; equal
// keys in different objects are not repeats.
#include "formats/strict_json.h"

#include <gtest/gtest.h>

#include "tests/formats/test_support.h"

namespace illm::formats {
namespace {

StrictJsonProblem problem_of(const std::string& text) {
  StrictJsonProblem problem;
  parse_json_strictly(text, &problem);
  return problem;
}

TEST(StrictJson, RepeatedKeysAreFoundAtAnyDepth) {
  EXPECT_EQ(problem_of(R"({"a": 1, "b": 2, "a": 3})").duplicate_key, "a");
  EXPECT_EQ(problem_of(R"({"x": {"k": 1, "k": 2}})").duplicate_key, "k");
  EXPECT_EQ(problem_of(R"([{"k": 1}, {"j": 1, "j": 1}])").duplicate_key, "j");
}

TEST(StrictJson, EqualKeysInDifferentObjectsAreFine) {
  EXPECT_TRUE(problem_of(R"({"a": {"k": 1}, "b": {"k": 2}, "k": 3})").ok());
  EXPECT_TRUE(problem_of(R"([{"k": 1}, {"k": 2}])").ok());
  const nlohmann::json j = parse_json_strictly_or_throw(R"({"a": {"k": 1}, "b": [1, 2]})", "f.json", "test");
  EXPECT_EQ(j["a"]["k"], 1);
  EXPECT_EQ(j["b"].size(), 2u);
}

TEST(StrictJson, DeepNestingIsRefused) {
  const std::string shallow = std::string(kMaxJsonDepth - 1, '[') + std::string(kMaxJsonDepth - 1, ']');
  EXPECT_TRUE(problem_of(shallow).ok());
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_TRUE(problem_of(deep).too_deep);
  illm::testing::expect_error_containing([&] { parse_json_strictly_or_throw(deep, "f.json", "recipe"); },
                                         {"f.json", "nests deeper than 64"});
}

TEST(StrictJson, ErrorsNameTheSource) {
  illm::testing::expect_error_containing([] { parse_json_strictly_or_throw("{\"a\": ", "c.json", "model config"); },
                                         {"c.json", "model config is not well-formed JSON"});
  illm::testing::expect_error_containing(
      [] { parse_json_strictly_or_throw(R"({"a": 1, "a": 2})", "c.json", "model config"); },
      {"c.json", "key \"a\" appears twice"});
}

}  // namespace
}  // namespace illm::formats
