#pragma once
// GPTQ rounding of matrix rows on a given per-row grid, behind an interface without LibTorch: the converter streams
// the LM head through it a chunk of rows at a time (calibration/integerize.h, `gptq_head`). The factor of the
// Hessian is computed once, at construction, and shared by every chunk (GPTQ treats rows independently).
#include <cstdint>
#include <memory>
#include <vector>

namespace illm::calib {

class GptqRowRounder {
 public:
  // `hessian`: [in][in] row-major float64, any positive multiple of XᵀX over the inputs the rows will multiply.
  // damp and act_order as GptqOptions (calibration/gptq.h). Throws illm::Error when the matrix has the wrong size.
  GptqRowRounder(const std::vector<double>& hessian, int64_t in_features, double damp, bool act_order);
  ~GptqRowRounder();
  GptqRowRounder(GptqRowRounder&&) noexcept;
  GptqRowRounder& operator=(GptqRowRounder&&) noexcept;

  int64_t in_features() const;
  // Codes of `count` rows (`rows` [count][in] row-major) on the grid w ≈ scale[r][g]·(code − zero_point[r][g]) of
  // groups of `group` columns (0 = one group per row; scale and zero_point [count][in/group]), codes in [0, q_max];
  // codes [count][in], one per byte, in the original column order.
  void round_rows(const float* rows, int64_t count, int64_t group, const double* scale, const int64_t* zero_point,
                  int64_t q_max, uint8_t* codes) const;

 private:
  struct Factor;
  std::unique_ptr<Factor> factor_;
};

}  // namespace illm::calib
