#include "converter/commands.h"
#include "converter/kernel_option.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "calibration/threads.h"
#include "formats/atomic_file.h"
#include "kernels/error.h"
#include <illm/build_info.h>

namespace illm::converter {
namespace {

constexpr CommandSpec kCommands[] = {
    {"quantize", "Quantize a Hugging Face LLaMA checkpoint to an integer-only .illm model and compare it with FP",
     add_quantize_command},
    {"eval", "Evaluate a model's perplexity on a dataset (token-id JSONL or text)", add_eval_command},
    {"generate", "Continue a prompt with the integer executor of an .illm model (greedy or sampled)", add_generate_command},
    {"inspect", "Summarize an .illm model file: settings, per-layer bits, scales, clip constants, sizes", add_inspect_command},
    {"verify", "Check an .illm file's integrity and replay its golden vectors bit for bit", add_verify_command},
    {"sweep", "Sweep integer-only quality over bit settings x softmax clip constants; table, JSON and SVG plot",
     add_sweep_command},
    {"export", "Export an .illm model for another runtime (c99: model.bin + the dependency-free C99 runtime; onnx: an "
               "integer-only ONNX graph)",
     add_export_command},
};

// Exception texts may span lines (LibTorch appends backtraces): keep the first line.
std::string first_line(const char* what) {
  std::string text = what ? what : "unknown error";
  if (auto nl = text.find('\n'); nl != std::string::npos) text.resize(nl);
  return text;
}

}  // namespace

std::span<const CommandSpec> all_commands() { return kCommands; }

int run_cli(int argc, char** argv) {
  formats::install_temporary_file_cleanup();  // before anything is written: disk-full and signal safety
  calib::retain_freed_memory();  // LibTorch's multi-MB temporaries would otherwise be page-faulted in anew
  CLI::App app{"illm: post-training quantization of Hugging Face LLaMA checkpoints to integer-only models "
               "(I-LLM), with an embedded bit-exact integer executor.",
               "illm"};
  app.set_version_flag("--version", std::string(build_info::kVersion) + "\n" + kernel_paths_summary());
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, CommandRun>> runs;
  for (const auto& spec : all_commands()) {
    CLI::App* sub = app.add_subcommand(spec.name, spec.description);
    runs.emplace_back(sub, spec.add(*sub));
  }
  // An unknown command word: CLI11 would only say "A subcommand is required".
  if (argc > 1 && argv[1][0] != '-') {
    const std::string word = argv[1];
    bool known = false;
    for (const auto& spec : all_commands()) known = known || word == spec.name;
    if (!known) {
      std::fprintf(stderr, "illm: unknown command '%s' (see illm --help)\n", word.c_str());
      return 1;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" to CLI11 that succeed; every real one is one line, exit code 1 (README).
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    const CLI::App* failed = nullptr;
    for (const auto& [sub, run] : runs)
      if (sub->parsed()) failed = sub;
    const std::string command = failed ? "illm " + failed->get_name() : "illm";
    std::fprintf(stderr, "%s: %s (see %s --help)\n", command.c_str(), first_line(e.what()).c_str(), command.c_str());
    return 1;
  }
  for (auto& [sub, run] : runs) {
    if (!sub->parsed()) continue;
    int code = 1;
    try {
      code = run();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "illm %s: %s\n", sub->get_name().c_str(), first_line(e.what()).c_str());
      return 1;
    } catch (...) {
      std::fprintf(stderr, "illm %s: unknown error\n", sub->get_name().c_str());
      return 1;
    }
    // A report that did not reach stdout (a full disk behind a redirection) is an error too.
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
      std::fprintf(stderr, "illm %s: writing to standard output failed: %s\n", sub->get_name().c_str(),
                   std::strerror(errno));
      return 1;
    }
    return code;
  }
  return 0;
}

}  // namespace illm::converter
