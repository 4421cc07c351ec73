// illm command-line entry point (placeholder until the CLI lands).
#include <cstdio>
int main() { std::puts("illm"); return 0; }
