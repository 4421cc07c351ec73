#pragma once
// The per-token activation quantization points of a block ("sites") and their optional refinements:
//   clip ratio r (calibration/activation_clip.h): the dynamic range [min, max] of each row becomes [r·min, r·max]
//     (values outside saturate);
//   TRIP power-of-two channel factors (calibration/trip.h): channel c uses the step s·2^(α_c − K) instead of the
//     row's step s (α_c ∈ [0, K]; α_c = K is the plain quantizer), with the row's zero point z shared by all channels.
// Codes stay asymmetric n-bit per row: q = clamp(round(x/step_c) + z, 0, 2^n − 1), x̂ = step_c·(q − z).
#include <array>

#include <torch/torch.h>

namespace illm::calib {

enum ActSite { kSiteAttnIn = 0, kSiteQ, kSiteK, kSiteV, kSiteAttnOut, kSiteFfnIn, kSiteDownIn, kNumActSites };
const char* act_site_name(int site);

struct SiteQuant {
  double clip_ratio = 1.0;    // (0, 1]; 1 = the plain min/max range
  torch::Tensor trip_shifts;  // [channels] int64 α_c in [0, trip_max_shift]; undefined = no TRIP at this site
};
using SiteQuants = std::array<SiteQuant, kNumActSites>;

// Dynamic per-row (last dimension) asymmetric fake quantization with a site's refinements; straight-through
// gradient like fake_quant_per_token. bits >= 16 returns x unchanged. With clip_ratio 1 and no TRIP this is exactly
// fake_quant_per_token(x, bits).
torch::Tensor fake_quant_site(const torch::Tensor& x, int bits, const SiteQuant& site, int trip_max_shift);

}  // namespace illm::calib
