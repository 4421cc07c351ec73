#pragma once
// The one exception type of the project. Messages name the file, tensor or operator and the reason.
#include <stdexcept>
#include <string>

namespace illm {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace illm
