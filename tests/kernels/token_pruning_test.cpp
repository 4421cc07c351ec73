// Attention-guided token pruning (kernels/token_pruning.h, docs/token-pruning.md): the ordering and removal rule on
// hand-derived cases, and the executor's pruned prefill on the shared test models: ρ = 0 changes nothing, kept rows
// and caches are what the rule implies, position 0 and the last token stay, decode after a pruned prefill is
// consistent. (Bit-identity across kernel paths and thread counts: kernel_paths_test.)
#include "kernels/token_pruning.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "formats/illm_file.h"
#include "kernels/error.h"
#include "kernels/executor.h"

namespace illm {
namespace {

// received_j = Σ_(i >= j) P(i, j) of a lower-triangular probability matrix (one head), written out by hand below.
std::vector<int64_t> column_sums(const std::vector<std::vector<int64_t>>& p) {
  std::vector<int64_t> sums(p.size(), 0);
  for (const auto& row : p)
    for (size_t j = 0; j < row.size(); ++j) sums[j] += row[j];
  return sums;
}

// Rows sum to 8 (= 2^(p_out−1) for p_out = 4). Column sums 20, 8, 5, 4, 3 over 5, 4, 3, 2, 1 queries: means 4, 2,
// 5/3, 2, 3. Least attended first: 2 (5/3); 1 and 3 tie at 2 (8·2 = 4·4), the smaller first; then 4 (3), 0 (4).
const std::vector<std::vector<int64_t>> kProbabilities = {
    {8}, {4, 4}, {4, 1, 3}, {2, 1, 1, 4}, {2, 2, 1, 0, 3}};

TEST(TokenPruningRule, HandDerivedOrderFromAProbabilityMatrix) {
  const std::vector<int64_t> received = column_sums(kProbabilities);
  ASSERT_EQ(received, (std::vector<int64_t>{20, 8, 5, 4, 3}));
  const std::vector<int32_t> from_zero = {0, 1, 2, 3, 4};  // a call at positions 0..4: position 0 and 4 stay
  EXPECT_EQ(tokens_to_prune(received, from_zero, 0), (std::vector<int32_t>{}));
  EXPECT_EQ(tokens_to_prune(received, from_zero, 1), (std::vector<int32_t>{2}));
  EXPECT_EQ(tokens_to_prune(received, from_zero, 2), (std::vector<int32_t>{1, 2}));  // the tie: 1 before 3
  EXPECT_EQ(tokens_to_prune(received, from_zero, 3), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(tokens_to_prune(received, from_zero, 4), (std::vector<int32_t>{1, 2, 3}));  // only 3 are eligible
  // A later call (positions 10..14): its first token may go, its last never.
  const std::vector<int32_t> later = {10, 11, 12, 13, 14};
  EXPECT_EQ(tokens_to_prune(received, later, 4), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(tokens_to_prune(received, later, 5), (std::vector<int32_t>{0, 1, 2, 3}));
  // Positions after an earlier pruning (not consecutive): the rule uses the local indices (queries present).
  const std::vector<int32_t> gaps = {0, 3, 4, 9, 12};
  EXPECT_EQ(tokens_to_prune(received, gaps, 2), (std::vector<int32_t>{1, 2}));
}

TEST(TokenPruningRule, CrossMultiplicationIsExact) {
  // Means (2^60 + 4)/4 = 2^58 + 1 and (3·2^58 + 2)/3 = 2^58 + 2/3: token 1 is less attended. In double both means
  // round to 2^58 and the tie would pick token 0.
  const int64_t x = int64_t{1} << 58;
  const std::vector<int64_t> received = {4 * x + 4, 3 * x + 2, 0, 5};
  EXPECT_EQ(tokens_to_prune(received, std::vector<int32_t>{7, 8, 9, 10}, 2), (std::vector<int32_t>{1, 2}));
  const std::vector<int64_t> close = {4 * x + 4, 3 * x + 2, 2 * x + 4, 5};  // means x + 1, x + 2/3, x + 2, 5
  EXPECT_EQ(tokens_to_prune(close, std::vector<int32_t>{7, 8, 9, 10}, 1), (std::vector<int32_t>{1}));
}

TEST(TokenPruningRule, PositionZeroAndTheLastTokenAreNeverRemoved) {
  // They received the least attention of all, and still stay.
  const std::vector<int64_t> received = {0, 100, 100, 100, 0};
  EXPECT_EQ(tokens_to_prune(received, std::vector<int32_t>{0, 1, 2, 3, 4}, 4), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(tokens_to_prune(std::vector<int64_t>{5, 1}, std::vector<int32_t>{0, 1}, 1), (std::vector<int32_t>{}));
}

TEST(TokenPruningRule, CountIsTheFloorOfRateTimesTokens) {
  EXPECT_EQ(pruned_token_count(TokenPruning{3, 10, 0}, 7), 2);   // 2.1
  EXPECT_EQ(pruned_token_count(TokenPruning{1, 2, 0}, 5), 2);    // 2.5
  EXPECT_EQ(pruned_token_count(TokenPruning{1, 2, 0}, 4), 2);    // 2 exactly
  EXPECT_EQ(pruned_token_count(TokenPruning{1, 10, 0}, 9), 0);   // 0.9
  EXPECT_EQ(pruned_token_count(TokenPruning{0, 1, 0}, 100), 0);  // off
  EXPECT_EQ(pruned_token_count(TokenPruning{999999999, 1000000000, 0}, 2147483647), 2147483644);
}

TEST(TokenPruningRule, BadOptionsAreRejected) {
  EXPECT_NO_THROW(check_token_pruning(TokenPruning{0, 1, 0}, 5));
  EXPECT_NO_THROW(check_token_pruning(TokenPruning{9, 10, 4}, 5));
  EXPECT_THROW(check_token_pruning(TokenPruning{10, 10, 0}, 5), Error);  // ρ = 1
  EXPECT_THROW(check_token_pruning(TokenPruning{-1, 10, 0}, 5), Error);
  EXPECT_THROW(check_token_pruning(TokenPruning{1, 0, 0}, 5), Error);
  EXPECT_THROW(check_token_pruning(TokenPruning{1, 10, 5}, 5), Error);  // layer out of range
  EXPECT_THROW(check_token_pruning(TokenPruning{1, 10, -1}, 5), Error);
}

TEST(TokenPruningRule, RemoveTokensCompactsRowsAndPositions) {
  ResidualStream h;
  h.rows = 4, h.cols = 2;
  h.codes = {0, 1, 10, 11, 20, 21, 30, 31};
  h.scales = {Dyadic{1, 1}, Dyadic{2, 2}, Dyadic{3, 3}, Dyadic{4, 4}};
  std::vector<int32_t> positions = {5, 6, 7, 8};
  remove_tokens(std::vector<int32_t>{1, 2}, h, positions);
  EXPECT_EQ(h.rows, 2);
  EXPECT_EQ(h.codes, (std::vector<int16_t>{0, 1, 30, 31}));
  EXPECT_EQ(h.scales, (std::vector<Dyadic>{Dyadic{1, 1}, Dyadic{4, 4}}));
  EXPECT_EQ(positions, (std::vector<int32_t>{5, 8}));
}

// ------------------------------------------------------------------------------------------------------------------
// The executor on the shared test models (tests/fixtures/make_test_models.sh).

const QuantizedModel& test_model(const std::string& name) {
  static std::map<std::string, formats::LoadedIllm> models;
  auto it = models.find(name);
  if (it == models.end())
    it = models.emplace(name, formats::read_illm(std::filesystem::path(ILLM_TEST_MODELS_DIR) / (name + ".illm"))).first;
  return it->second.model;
}

std::vector<int32_t> token_ids(int32_t vocab, int32_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids{1};
  while (static_cast<int32_t>(ids.size()) < count) ids.push_back(static_cast<int32_t>(rng() % vocab));
  return ids;
}

// The KV entries of one (layer, head) as comparable rows: codes, zero point, scale.
struct CacheEntry {
  std::vector<uint8_t> codes;
  int32_t zero_point;
  Dyadic scale;
  bool operator==(const CacheEntry&) const = default;
};
std::vector<CacheEntry> entries(const KvHeadView& view) {
  std::vector<CacheEntry> out;
  for (int32_t t = 0; t < view.length; ++t)
    out.push_back(CacheEntry{std::vector<uint8_t>(view.row(t), view.row(t) + view.head_dim), view.zero_points[t],
                             view.scales[t]});
  return out;
}

constexpr int32_t kTokens = 40;

TEST(TokenPruningExecutor, RateZeroIsTheUnprunedPrefill) {
  for (const std::string name : {"stories260K-w8a8", "stories260K-w4a4"}) {
    const QuantizedModel& model = test_model(name);
    const std::vector<int32_t> ids = token_ids(model.shape.vocab, kTokens, 1);
    Executor plain(model, reference_kernels());
    const IntegerLogits want = plain.forward(ids);
    for (const int32_t layer : {0, model.shape.n_layers - 1}) {
      Executor executor(model, reference_kernels());
      executor.set_token_pruning(TokenPruning{0, 10, layer});
      const IntegerLogits got = executor.forward(ids);
      EXPECT_EQ(got.values, want.values) << name;
      EXPECT_EQ(got.scales, want.scales) << name;
      for (int32_t l = 0; l < model.shape.n_layers; ++l) EXPECT_EQ(executor.cache().length(l), kTokens);
    }
    // And the unpruned prefill is token-by-token decode (an independent route through attention).
    Executor decode(model, reference_kernels());
    for (int32_t t = 0; t < kTokens; ++t) {
      const IntegerLogits step = decode.forward(std::span<const int32_t>(&ids[t], 1));
      ASSERT_TRUE(std::equal(step.values.begin(), step.values.end(),
                             want.values.begin() + static_cast<ptrdiff_t>(t) * model.shape.vocab))
          << name << " position " << t;
    }
    std::vector<int32_t> all(kTokens);
    for (int32_t t = 0; t < kTokens; ++t) all[t] = t;
    EXPECT_EQ(want.positions, all);
  }
}

// Pruning after the last layer's attention only: the caches hold every token (each layer stores before it prunes),
// the MLP and the head are row-wise, so the kept rows are the unpruned rows and decode continues identically.
TEST(TokenPruningExecutor, LastLayerPruningKeepsTheUnprunedRows) {
  const QuantizedModel& model = test_model("stories260K-w8a8");
  const int32_t last = model.shape.n_layers - 1, vocab = model.shape.vocab;
  const std::vector<int32_t> ids = token_ids(vocab, kTokens + 3, 2);
  const std::span<const int32_t> prompt(ids.data(), kTokens);
  Executor plain(model, reference_kernels()), pruned(model, reference_kernels());
  pruned.set_token_pruning(TokenPruning{1, 4, last});  // ρ = 0.25: ⌊10⌋ tokens go
  const IntegerLogits want = plain.forward(prompt), got = pruned.forward(prompt);
  ASSERT_EQ(got.tokens, kTokens - 10);
  ASSERT_EQ(got.positions.size(), static_cast<size_t>(got.tokens));
  EXPECT_EQ(got.positions.front(), 0);
  EXPECT_EQ(got.positions.back(), kTokens - 1);
  for (int32_t r = 0; r < got.tokens; ++r) {
    const int32_t p = got.positions[r];
    EXPECT_TRUE(std::equal(got.values.begin() + static_cast<ptrdiff_t>(r) * vocab,
                           got.values.begin() + static_cast<ptrdiff_t>(r + 1) * vocab,
                           want.values.begin() + static_cast<ptrdiff_t>(p) * vocab))
        << "kept row of position " << p;
    EXPECT_EQ(got.scales[r], want.scales[p]);
  }
  for (int32_t l = 0; l < model.shape.n_layers; ++l) EXPECT_EQ(pruned.cache().length(l), kTokens);
  for (int32_t t = kTokens; t < kTokens + 3; ++t) {
    const std::span<const int32_t> one(&ids[t], 1);
    EXPECT_EQ(pruned.forward(one).values, plain.forward(one).values) << "decode at position " << t;
  }
}

// ρ = 0.5 from layer 0 on 40 tokens: 40 → 20 → 10 → 5 → 3 → 2 tokens after the 5 layers (⌊ρ·T_l⌋ each time, and at
// 3 tokens only the middle one is eligible). Layer l's cache holds the tokens present at its attention; position 0
// and the last token survive.
TEST(TokenPruningExecutor, EveryLayerPrunesItsShareAndKeepsTheEnds) {
  const QuantizedModel& model = test_model("stories260K-w4a8");
  ASSERT_EQ(model.shape.n_layers, 5);
  const std::vector<int32_t> ids = token_ids(model.shape.vocab, kTokens, 3);
  Executor executor(model, reference_kernels());
  executor.set_token_pruning(TokenPruning{1, 2, 0});
  const IntegerLogits got = executor.forward(ids);
  const std::vector<int32_t> present = {40, 20, 10, 5, 3};
  for (int32_t l = 0; l < 5; ++l) EXPECT_EQ(executor.cache().length(l), present[l]) << "layer " << l;
  EXPECT_EQ(got.positions, (std::vector<int32_t>{0, kTokens - 1}));
  EXPECT_EQ(executor.position(), kTokens);
}

// Pruning from the second-to-last layer: after that layer's attention the kept tokens go on alone, and the MLP is
// row-wise, so the last layer's cache must be the unpruned last-layer entries of the kept tokens, in order, RoPE at
// their original positions (a renumbered position would rotate the keys differently and match nothing).
TEST(TokenPruningExecutor, LaterLayersCacheTheKeptTokensAtTheirPositions) {
  const QuantizedModel& model = test_model("stories260K-w8a8");
  const int32_t last = model.shape.n_layers - 1;
  const std::vector<int32_t> ids = token_ids(model.shape.vocab, kTokens, 4);
  Executor plain(model, reference_kernels()), pruned(model, reference_kernels());
  pruned.set_token_pruning(TokenPruning{3, 10, last - 1});  // 40 → 28 → 20
  plain.forward(ids);
  const IntegerLogits got = pruned.forward(ids);
  EXPECT_EQ(got.tokens, 20);
  ASSERT_EQ(pruned.cache().length(last), 28);
  EXPECT_EQ(pruned.cache().length(last - 1), kTokens);
  for (int32_t g = 0; g < model.shape.n_kv_heads; ++g)
    for (const bool keys : {true, false}) {
      const auto view = [&](const Executor& e) {
        return entries(keys ? e.cache().keys(last, g) : e.cache().values(last, g));
      };
      const std::vector<CacheEntry> all = view(plain), kept = view(pruned);
      // `kept` must be a subsequence of `all` that contains the first and the last token and every final row.
      std::vector<int32_t> matched;
      size_t i = 0;
      for (int32_t p = 0; p < kTokens && i < kept.size(); ++p)
        if (all[p] == kept[i]) matched.push_back(p), ++i;
      ASSERT_EQ(i, kept.size()) << "head " << g << (keys ? " keys" : " values") << ": not the kept tokens' entries";
      if (!keys) continue;  // values of different tokens may coincide; the keys fix the positions
      EXPECT_EQ(matched.front(), 0);
      EXPECT_EQ(matched.back(), kTokens - 1);
      for (const int32_t p : got.positions)
        EXPECT_TRUE(std::find(matched.begin(), matched.end(), p) != matched.end()) << "final row " << p;
    }
}

// Decode after a pruned prefill: two one-token calls equal one unpruned two-token call on the same pruned cache
// (prefill attention over slots and decode attention agree), and every layer's cache grows by one per token.
TEST(TokenPruningExecutor, DecodeAfterAPrunedPrefillIsConsistent) {
  const QuantizedModel& model = test_model("stories260K-w4a4");
  const std::vector<int32_t> ids = token_ids(model.shape.vocab, kTokens + 2, 5);
  const std::span<const int32_t> prompt(ids.data(), kTokens), next(ids.data() + kTokens, 2);
  const TokenPruning pruning{2, 10, 1};
  Executor stepwise(model, reference_kernels()), chunked(model, reference_kernels());
  stepwise.set_token_pruning(pruning);
  chunked.set_token_pruning(pruning);
  const IntegerLogits a = stepwise.forward(prompt), b = chunked.forward(prompt);
  ASSERT_EQ(a.values, b.values);
  ASSERT_LT(a.tokens, kTokens);
  std::vector<int32_t> lengths;
  for (int32_t l = 0; l < model.shape.n_layers; ++l) lengths.push_back(stepwise.cache().length(l));
  EXPECT_EQ(lengths[0], kTokens);
  EXPECT_EQ(lengths[1], kTokens);  // layer 1 prunes after its attention
  EXPECT_LT(lengths[2], kTokens);
  const IntegerLogits s0 = stepwise.forward(next.first(1)), s1 = stepwise.forward(next.subspan(1, 1));
  EXPECT_EQ(s0.positions, (std::vector<int32_t>{kTokens}));  // one-token calls never prune
  chunked.set_token_pruning(TokenPruning{});
  const IntegerLogits c = chunked.forward(next);
  ASSERT_EQ(c.tokens, 2);
  const size_t vocab = static_cast<size_t>(model.shape.vocab);
  EXPECT_TRUE(std::equal(s0.values.begin(), s0.values.end(), c.values.begin()));
  EXPECT_TRUE(std::equal(s1.values.begin(), s1.values.end(), c.values.begin() + static_cast<ptrdiff_t>(vocab)));
  EXPECT_EQ(s0.scales[0], c.scales[0]);
  EXPECT_EQ(s1.scales[0], c.scales[1]);
  for (int32_t l = 0; l < model.shape.n_layers; ++l) EXPECT_EQ(stepwise.cache().length(l), lengths[l] + 2);
  EXPECT_EQ(stepwise.position(), kTokens + 2);
}

TEST(TokenPruningExecutor, BadOptionsAreRejected) {
  const QuantizedModel& model = test_model("stories260K-w8a8");
  Executor executor(model, reference_kernels());
  EXPECT_THROW(executor.set_token_pruning(TokenPruning{1, 1, 0}), Error);
  EXPECT_THROW(executor.set_token_pruning(TokenPruning{1, 2, model.shape.n_layers}), Error);
  EXPECT_EQ(executor.token_pruning().rate_numerator, 0);
}

}  // namespace
}  // namespace illm
