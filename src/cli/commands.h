// Subcommand registration. Each register_* adds one subcommand to the app; its callback
// runs the command and records the exit code.
#pragma once

#include <CLI/CLI.hpp>

namespace strata::cli {

void register_all(CLI::App& app);

void register_inspect(CLI::App& app);
void register_synth(CLI::App& app);
void register_quantize(CLI::App& app);
void register_run(CLI::App& app);
void register_bench(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_serve(CLI::App& app);
void register_template(CLI::App& app);
void register_bench_agent(CLI::App& app);
void set_exit_code(int code);
int exit_code();

}  // namespace strata::cli
