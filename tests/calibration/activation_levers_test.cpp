// Activation-side levers: the clipped per-token quantizer (hand case), TRIP power-of-two channel factors (hand case,
// channel selection on an outlier channel), the greedy clip-ratio search on a synthetic loss.
#include <gtest/gtest.h>

#include "calibration/act_sites.h"
#include "calibration/activation_clip.h"
#include "calibration/quantizers.h"
#include "calibration/trip.h"

namespace {

using namespace illm::calib;

TEST(ActSites, PlainSiteIsThePerTokenQuantizer) {
  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({4, 7, 33}, torch::kFloat64) * 3;
  EXPECT_TRUE(torch::equal(fake_quant_site(x, 4, SiteQuant{}, 0), fake_quant_per_token(x, 4)));
  SiteQuant zero_shifts;  // TRIP with K = 0 is the plain quantizer too
  zero_shifts.trip_shifts = torch::zeros({33}, torch::kInt64);
  EXPECT_LT((fake_quant_site(x, 4, zero_shifts, 0) - fake_quant_per_token(x, 4)).abs().max().item<double>(), 1e-12);
}

// x = [−1, 0, 2, 4], 2 bits, r = 0.5: range [−0.5, 2], s = 2.5/3, z = round(0.6) = 1;
// codes 0, 1, 3, 3 (4/s + 1 = 5.8 saturates) → [−s, 0, 2s, 2s].
TEST(ActSites, ClipRatioHandCase) {
  SiteQuant site;
  site.clip_ratio = 0.5;
  const torch::Tensor got = fake_quant_site(torch::tensor({-1.0, 0.0, 2.0, 4.0}, torch::kFloat64), 2, site, 0);
  const double s = 2.5 / 3;
  const double expected[] = {-s, 0, 2 * s, 2 * s};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(got[i].item<double>(), expected[i], 1e-12) << i;
}

// x = [12, 0.7, −1], 4 bits, K = 2, α = [2, 0, 0]: s = 13/15, z = round(15/13) = 1 (shared by all channels);
// channel 0 step s: 12/s = 13.85 → 14 + 1 = 15 → 14·s = 182/15; channels 1, 2 step s/4 = 13/60: 0.7 → 3.23 → 3 + 1
// → 3·13/60 = 0.65 (plain: 13/15); −1 → −4.6 → −5 + 1 saturates at 0 → −13/60 (the finer step's range is 4x
// smaller: the channel factor pays off only where a channel stays far inside the token's range).
TEST(Trip, PowerOfTwoStepsHandCase) {
  SiteQuant site;
  site.trip_shifts = torch::tensor({2, 0, 0}, torch::kInt64);
  const torch::Tensor got = fake_quant_site(torch::tensor({12.0, 0.7, -1.0}, torch::kFloat64), 4, site, 2);
  EXPECT_NEAR(got[0].item<double>(), 182.0 / 15, 1e-12);
  EXPECT_NEAR(got[1].item<double>(), 0.65, 1e-12);
  EXPECT_NEAR(got[2].item<double>(), -13.0 / 60, 1e-12);
}

// One outlier channel (×40) among N(0, 1) channels: the calibrator keeps α = K for the outlier and refines the
// others, and their squared error drops.
TEST(Trip, CalibratorRefinesChannelsBelowTheOutlier) {
  torch::manual_seed(2);
  torch::Tensor x = torch::randn({256, 16}, torch::kFloat64);
  x.select(1, 3).mul_(40);
  TripCalibrator cal(16, 4, 3, 1.0);
  cal.add(x.narrow(0, 0, 100));
  cal.add(x.narrow(0, 100, 156));
  const torch::Tensor shifts = cal.shifts();
  EXPECT_EQ(shifts[3].item<int64_t>(), 3);
  for (int c = 0; c < 16; ++c)
    if (c != 3) {
      EXPECT_LT(shifts[c].item<int64_t>(), 3) << c;
    }
  SiteQuant site;
  site.trip_shifts = shifts;
  const torch::Tensor trip = (fake_quant_site(x, 4, site, 3) - x).pow(2).sum(0);
  const torch::Tensor plain = (fake_quant_per_token(x, 4) - x).pow(2).sum(0);
  EXPECT_DOUBLE_EQ(trip[3].item<double>(), plain[3].item<double>());  // the outlier channel keeps its step
  const double others_trip = trip.sum().item<double>() - trip[3].item<double>();
  const double others_plain = plain.sum().item<double>() - plain[3].item<double>();
  // Measured 0.59x: the shared zero point lets the finer steps saturate on the far side of 0.
  EXPECT_LT(others_trip, 0.7 * others_plain) << others_trip << " vs " << others_plain;
}

// Loss Σ (r_s − target_s)² + 1: the greedy search finds each site's best grid ratio; one loss call for the start
// plus one per (site, other grid ratio).
TEST(ActivationClip, GreedySearchFindsEachSiteOptimum) {
  const double target[kNumActSites] = {0.875, 1.0, 1.0, 0.75, 1.0, 0.8, 0.6};
  int calls = 0;
  const SiteLoss loss = [&](const SiteQuants& s) {
    ++calls;
    double l = 1;
    for (int i = 0; i < kNumActSites; ++i) l += (s[i].clip_ratio - target[i]) * (s[i].clip_ratio - target[i]);
    return l;
  };
  const SiteQuants got = search_clip_ratios(loss, SiteQuants{}, clip_ratio_grid());
  const double expected[kNumActSites] = {0.875, 1.0, 1.0, 0.75, 1.0, 0.8125, 0.625};
  for (int i = 0; i < kNumActSites; ++i) EXPECT_DOUBLE_EQ(got[i].clip_ratio, expected[i]) << act_site_name(i);
  EXPECT_EQ(calls, 1 + kNumActSites * (static_cast<int>(clip_ratio_grid().size()) - 1));
}

}  // namespace
