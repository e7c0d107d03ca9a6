// strata: the one binary. Each subcommand lives in its own file (cmd_*.cpp) and registers
// itself here; this is the only place that picks a concrete backend.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"Strata: a local LLM server for coding agents, with a tiered KV cache"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "strata 0.1.0");
  strata::cli::register_all(app);
  CLI11_PARSE(app, argc, argv);
  return strata::cli::exit_code();
}
