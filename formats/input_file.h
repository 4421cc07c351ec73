#pragma once
// Opening the files a run reads (configs, recipes, datasets, tokenizers, checkpoints, model files) with one set of
// answers: a missing path, a directory and a device or FIFO (/dev/zero would be read forever) are refused by name
// before a byte is read, each with its own message. Errors are illm::Error "<path>: <what> <reason>".
#include <filesystem>
#include <string>

namespace illm::formats {

// Throws unless `path` names an existing regular file (symbolic links are followed). `what` says what the file
// is for, e.g. "dataset file": "data.txt: dataset file is a directory, not a file".
void require_regular_file(const std::filesystem::path& path, const std::string& what);

// Throws unless `path` names an existing directory ("model directory ... is a file, not a directory").
void require_directory(const std::filesystem::path& path, const std::string& what);

// The whole file as bytes, after require_regular_file; read errors are reported the same way.
std::string read_input_file(const std::filesystem::path& path, const std::string& what);

}  // namespace illm::formats
