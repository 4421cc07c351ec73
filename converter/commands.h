#pragma once
// The `illm` subcommands. Each lives in converter/cmd_<name>.cpp and exposes one `add_<name>_command` that
// declares its options on its CLI11 subcommand and returns what runs it after parsing. To add a command:
// write cmd_<name>.cpp, declare its add function below and list it in kCommands (commands.cpp).
#include <functional>
#include <span>

#include <CLI/CLI.hpp>

namespace illm::converter {

// Runs a parsed command; returns the process exit code. May throw (illm::Error → exit 1, see run_cli).
using CommandRun = std::function<int()>;

struct CommandSpec {
  const char* name;
  const char* description;  // one line for `illm --help`
  CommandRun (*add)(CLI::App& subcommand);
};

// Every subcommand, in `illm --help` order.
std::span<const CommandSpec> all_commands();

// Builds the `illm` app, parses argv, runs the chosen command. Every error, command-line parse errors included, is
// reported as one line "illm <command>: <message>" on stderr with exit code 1 (--help and --version exit 0).
int run_cli(int argc, char** argv);

CommandRun add_eval_command(CLI::App& subcommand);      // cmd_eval.cpp
CommandRun add_quantize_command(CLI::App& subcommand);  // cmd_quantize.cpp
CommandRun add_generate_command(CLI::App& subcommand);  // cmd_generate.cpp
CommandRun add_inspect_command(CLI::App& subcommand);   // cmd_inspect.cpp
CommandRun add_verify_command(CLI::App& subcommand);    // cmd_verify.cpp
CommandRun add_sweep_command(CLI::App& subcommand);     // cmd_sweep.cpp
CommandRun add_export_command(CLI::App& subcommand);    // cmd_export.cpp

}  // namespace illm::converter
