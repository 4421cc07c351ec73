// Greedy per-site activation clip ratio search. See activation_clip.h.
#include "calibration/activation_clip.h"

namespace illm::calib {

SiteQuants search_clip_ratios(const SiteLoss& loss, SiteQuants start, const std::vector<double>& grid) {
  double best = loss(start);
  for (int site = 0; site < kNumActSites; ++site) {
    const double current = start[site].clip_ratio;
    double chosen = current;
    for (double r : grid) {
      if (r == current) continue;
      SiteQuants trial = start;
      trial[site].clip_ratio = r;
      const double l = loss(trial);
      if (l < best) {
        best = l;
        chosen = r;
      }
    }
    start[site].clip_ratio = chosen;
  }
  return start;
}

}  // namespace illm::calib
