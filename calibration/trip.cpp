// TRIP power-of-two channel factors. See trip.h.
#include "calibration/trip.h"

#include <memory>

#include "calibration/fsbr.h"
#include "kernels/error.h"

namespace illm::calib {

TripCalibrator::TripCalibrator(int64_t channels, int bits, int max_shift, double clip_ratio)
    : bits_(bits), max_shift_(max_shift), clip_ratio_(clip_ratio),
      errors_(torch::zeros({max_shift + 1, channels}, torch::kFloat64)) {
  if (max_shift < 0) throw Error("TRIP: max shift must be >= 0");
}

void TripCalibrator::add(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  const torch::Tensor rows = x.detach().reshape({-1, x.size(-1)}).to(torch::kCPU, torch::kFloat64);
  for (int a = 0; a <= max_shift_; ++a) {
    SiteQuant site;
    site.clip_ratio = clip_ratio_;
    site.trip_shifts = torch::full({rows.size(1)}, a, torch::kInt64);
    const torch::Tensor err = (rows - fake_quant_site(rows, bits_, site, max_shift_)).pow(2).sum(0);
    errors_[a] += err;
  }
}

torch::Tensor TripCalibrator::shifts() const {
  // argmin over α with ties to the larger α: scan from K down and keep strictly smaller errors.
  torch::Tensor best = torch::full({errors_.size(1)}, max_shift_, torch::kInt64);
  torch::Tensor best_err = errors_[max_shift_].clone();
  for (int a = max_shift_ - 1; a >= 0; --a) {
    const torch::Tensor better = errors_[a] < best_err;
    best = torch::where(better, torch::full_like(best, a), best);
    best_err = torch::where(better, errors_[a], best_err);
  }
  return best;
}

bool trip_site(int site) {
  return site == kSiteAttnIn || site == kSiteAttnOut || site == kSiteFfnIn || site == kSiteDownIn;
}

SiteQuants calibrate_trip(const BlockWeights& weights, const torch::Tensor& alpha, const Activations& inputs,
                          const RotaryCosSin& rope, const BlockShape& shape, const FakeQuantSettings& settings,
                          int bits, int max_shift) {
  torch::NoGradGuard no_grad;
  std::array<std::unique_ptr<TripCalibrator>, kNumActSites> calibrators;
  const int64_t channels[kNumActSites] = {shape.hidden, 0, 0, 0, shape.n_heads * shape.head_dim, shape.hidden,
                                          shape.intermediate};
  for (int s = 0; s < kNumActSites; ++s)
    if (trip_site(s))
      calibrators[s] = std::make_unique<TripCalibrator>(channels[s], bits, max_shift, settings.sites[s].clip_ratio);
  FakeQuantSettings plain = settings;
  for (SiteQuant& s : plain.sites) s.trip_shifts = torch::Tensor();
  const SiteObserver observe = [&](ActSite site, const torch::Tensor& before, const torch::Tensor&) {
    if (calibrators[site]) calibrators[site]->add(before);
  };
  for (int64_t i = 0; i < inputs.samples(); i += kEvalChunk)
    fake_quant_block_forward(weights, alpha,
                             inputs.read(i, std::min(kEvalChunk, inputs.samples() - i)).to(weights.wq.device()), rope,
                             shape, plain, nullptr, &observe);
  SiteQuants out = settings.sites;
  for (int s = 0; s < kNumActSites; ++s)
    if (calibrators[s]) out[s].trip_shifts = calibrators[s]->shifts();
  return out;
}

}  // namespace illm::calib
