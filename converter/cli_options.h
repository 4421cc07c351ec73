#pragma once
// Options several commands share, declared once so that they check their values the same way.
#include <CLI/CLI.hpp>

namespace illm::converter {

// CPUs this process may run on (its affinity mask), at least 1.
int available_cpus();

// The largest --threads accepted: 4 × available_cpus(). More threads than CPUs only adds switching (measured:
// a one-window eval takes 2× longer at 8 threads than at 2 on 2 CPUs, 9× at 128), and 2000 threads would take
// minutes to start; a little oversubscription stays allowed for experiments.
int max_threads();

// --threads N: 0 (the default: all CPUs) to max_threads(); anything else is a one-line error naming the bound.
CLI::Option* add_threads_option(CLI::App& command, int& threads, const char* description);

}  // namespace illm::converter
