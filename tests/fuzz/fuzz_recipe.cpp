// libFuzzer target: recipe JSON through illm::parse_recipe_json (schema keys, types, ranges, repeated keys).
#include "formats/recipe.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  illm::fuzz::expect_refusal_or_success([&] {
    const illm::Recipe r = illm::parse_recipe_json(std::string(illm::fuzz::as_text(data, size)), "fuzz.json");
    illm::validate_recipe(r, "fuzz.json");  // what the parser accepted must stay valid
  });
  return 0;
}
