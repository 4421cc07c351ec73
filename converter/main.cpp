// illm command-line entry point; the commands live in converter/cmd_<name>.cpp (see converter/commands.h).
#include "converter/commands.h"

int main(int argc, char** argv) { return illm::converter::run_cli(argc, argv); }
