#pragma once
// Activation clipping search: a clip ratio r per activation site (calibration/act_sites.h: the token's range
// [min, max] becomes [r·min, r·max]) chosen to minimize the block-output MSE on calibration data. Greedy coordinate
// descent: the sites in data-flow order (attn_in, q, k, v, attn_out, ffn_in, down_in), each set to the grid ratio with
// the lowest loss given the ratios already chosen (ties and "no improvement" keep the current ratio). The grid
// holds dyadic ratios (k/16), so the integer path represents them exactly (docs/planned-operators.md).
#include <functional>
#include <vector>

#include "calibration/act_sites.h"

namespace illm::calib {

inline const std::vector<double>& clip_ratio_grid() {
  static const std::vector<double> grid = {1.0, 0.9375, 0.875, 0.8125, 0.75, 0.625};
  return grid;
}

using SiteLoss = std::function<double(const SiteQuants&)>;

// Returns `start` with each site's clip_ratio replaced by the searched one. `loss` is called once per (site, grid
// ratio ≠ current) plus once for `start`.
SiteQuants search_clip_ratios(const SiteLoss& loss, SiteQuants start, const std::vector<double>& grid);

}  // namespace illm::calib
