#include "converter/commands.h"
#include "converter/kernel_option.h"

#include <cstdio>
#include <exception>
#include <string>

#include "calibration/threads.h"
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (auto& [sub, run] : runs) {
    if (!sub->parsed()) continue;
    try {
      return run();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "illm %s: %s\n", sub->get_name().c_str(), first_line(e.what()).c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace illm::converter
