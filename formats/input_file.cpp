#include "formats/input_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "kernels/error.h"

namespace illm::formats {
namespace fs = std::filesystem;

namespace {

// What stands at `path` when it is not what was asked for; "" when nothing is there.
std::string kind_of(const fs::file_status& status) {
  switch (status.type()) {
    case fs::file_type::regular: return "a regular file";
    case fs::file_type::directory: return "a directory";
    case fs::file_type::block:
    case fs::file_type::character: return "a device";
    case fs::file_type::fifo: return "a FIFO";
    case fs::file_type::socket: return "a socket";
    default: return "not a regular file";
  }
}

}  // namespace

namespace {

// What stands at `path`; a missing path (or one that cannot be examined) is the error.
fs::file_status existing_status(const fs::path& path, const std::string& what) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found || (ec && status.type() == fs::file_type::none))
    throw Error(path.string() + ": " + what + " does not exist");
  if (ec) throw Error(path.string() + ": " + what + " cannot be examined: " + ec.message());
  return status;
}

}  // namespace

void require_regular_file(const fs::path& path, const std::string& what) {
  const fs::file_status status = existing_status(path, what);
  if (status.type() == fs::file_type::directory)
    throw Error(path.string() + ": " + what + " is a directory, not a file");
  if (status.type() != fs::file_type::regular)
    throw Error(path.string() + ": " + what + " is " + kind_of(status) + ", not a regular file");
}

void require_directory(const fs::path& path, const std::string& what) {
  const fs::file_status status = existing_status(path, what);
  if (status.type() != fs::file_type::directory)
    throw Error(path.string() + ": " + what + " is " + kind_of(status) + ", not a directory");
}

std::string read_input_file(const fs::path& path, const std::string& what) {
  require_regular_file(path, what);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": " + what + " cannot be opened: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(path.string() + ": " + what + " cannot be read");
  return text.str();
}

}  // namespace illm::formats
