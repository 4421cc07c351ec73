#pragma once
// libhdf5 (1.10, Debian bookworm) is not robust against malformed files: fuzzing .illm payloads whose header
// SHA-256 was recomputed (a deliberately forged file; accidental corruption fails the SHA-256 first) made it crash
// with invalid frees in its link tables (H5G__link_release_table under H5Ovisit) within a hundred inputs. So every
// reading of an .illm file runs first in a forked child process, exactly as it will run in the tool's own process
// (same code, same heap state at the fork); a crash or a hang there becomes an ordinary error here, and only a
// reading that survived is repeated for real. Costs one more pass over the file (the child's memory is gone before
// the real pass starts, so the peak does not grow). docs/robustness.md says what remains.
#include <filesystem>
#include <functional>

namespace illm::formats {

// Runs `reading` in a forked child and waits: returns when the child exits normally (whatever `reading` threw, the
// caller's own run reports it), throws illm::Error naming `file` when the child crashes, is killed, or takes more
// than 120 s. `reading` must only read (its effects die with the child).
void rehearse_in_child(const std::filesystem::path& file, const std::function<void()>& reading);

}  // namespace illm::formats
