// Per-token activation quantizer with clip ratio and TRIP channel factors. See act_sites.h.
#include "calibration/act_sites.h"

#include "calibration/quantizers.h"
#include "kernels/error.h"

namespace illm::calib {

const char* act_site_name(int site) {
  static const char* names[kNumActSites] = {"attn_in", "q", "k", "v", "attn_out", "ffn_in", "down_in"};
  return site >= 0 && site < kNumActSites ? names[site] : "?";
}

torch::Tensor fake_quant_site(const torch::Tensor& x, int bits, const SiteQuant& site, int trip_max_shift) {
  if (bits >= 16) return x;
  const bool trip = site.trip_shifts.defined();
  if (site.clip_ratio == 1.0 && !trip) return fake_quant_per_token(x, bits);
  if (!(site.clip_ratio > 0 && site.clip_ratio <= 1))
    throw Error("fake_quant_site: clip ratio must be in (0, 1], got " + std::to_string(site.clip_ratio));
  const torch::Tensor hi = x.amax(-1, true).clamp_min(0) * site.clip_ratio;
  const torch::Tensor lo = x.amin(-1, true).clamp_max(0) * site.clip_ratio;
  if (!trip) return fake_quant_asym_range(x, lo, hi, bits);
  const double q_max = static_cast<double>((1 << bits) - 1);
  const torch::Tensor scale = ((hi - lo) / q_max).clamp_min(kMinScale);
  const torch::Tensor zero = round_half_away(-lo.detach() / scale.detach()).clamp(0, q_max);
  // step_c = s·2^(α_c − K): α_c = K keeps the row's step, smaller α_c refine it by powers of two.
  const torch::Tensor factor = torch::pow(2.0, (site.trip_shifts - trip_max_shift).to(x.scalar_type()));
  const torch::Tensor step = scale * factor;
  const torch::Tensor codes = torch::clamp(round_ste(x / step) + zero, 0, q_max);
  return (codes - zero) * step;
}

}  // namespace illm::calib
