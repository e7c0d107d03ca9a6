// strata: the one binary. Each subcommand lives in its own file (cmd_*.cpp) and registers
// itself here; this is the only place that picks a concrete backend.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstring>
#include <vector>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"Strata: a local LLM server for coding agents, with a tiered KV cache"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "strata 0.1.0");
  strata::cli::register_all(app);
  // `strata bench agent ...` is `strata bench-agent ...` (a sub-subcommand of `bench` would
  // inherit its required -m).
  std::vector<char*> args(argv, argv + argc);
  static char bench_agent[] = "bench-agent";
  if (argc >= 3 && std::strcmp(argv[1], "bench") == 0 && std::strcmp(argv[2], "agent") == 0) {
    args.erase(args.begin() + 2);
    args[1] = bench_agent;
  }
  CLI11_PARSE(app, static_cast<int>(args.size()), args.data());
  return strata::cli::exit_code();
}
