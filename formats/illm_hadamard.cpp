// The online Walsh–Hadamard attributes of /model. See illm_hadamard.h.
#include "formats/illm_hadamard.h"

#include <string>

#include "formats/hdf5_util.h"
#include "kernels/error.h"
#include "kernels/reference/hadamard.h"

namespace illm::formats {
namespace {

struct Site {
  const char* flag;  // attribute names
  const char* plan;
  bool QuantizedModel::*enabled;
  int32_t ModelShape::*size;  // the transform's size n
};
constexpr Site kSites[] = {{"hadamard_down", "hadamard_down_plan", &QuantizedModel::hadamard_down, &ModelShape::intermediate},
                           {"hadamard_qk", "hadamard_qk_plan", &QuantizedModel::hadamard_qk, &ModelShape::head_dim}};

}  // namespace

void write_online_hadamards(hid_t model_group, const QuantizedModel& model) {
  for (const Site& site : kSites) {
    if (!(model.*site.enabled)) continue;
    h5::write_int_attribute(model_group, site.flag, 1, H5T_STD_U8LE);
    h5::write_string_attribute(model_group, site.plan, plan_hadamard(model.shape.*site.size).describe());
  }
}

void read_online_hadamards(hid_t model_group, QuantizedModel& model) {
  for (const Site& site : kSites) {
    model.*site.enabled = false;
    if (H5Aexists(model_group, site.flag) <= 0) continue;
    model.*site.enabled = h5::read_int_attribute(model_group, site.flag, 0, 1) == 1;
    if (!(model.*site.enabled)) continue;
    const int32_t n = model.shape.*site.size;
    if (n < 1) throw Error(h5::describe(model_group) + ": " + site.flag + " with a transform size of " + std::to_string(n));
    const std::string stored = h5::read_string_attribute(model_group, site.plan);
    const std::string expected = plan_hadamard(n).describe();
    if (stored != expected)
      throw Error(h5::describe(model_group) + ": attribute " + site.plan + " is '" + stored + "', but this build's " +
                  "Hadamard matrix of size " + std::to_string(n) + " is '" + expected + "'");
  }
}

}  // namespace illm::formats
