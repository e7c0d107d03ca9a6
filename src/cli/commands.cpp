#include "cli/commands.h"

namespace strata::cli {
namespace {
int g_exit_code = 0;
}

void set_exit_code(int code) { g_exit_code = code; }
int exit_code() { return g_exit_code; }

void register_all(CLI::App& app) {
  register_inspect(app);
  register_synth(app);
  register_quantize(app);
  register_run(app);
  register_bench(app);
  register_bench_agent(app);
  register_tokenize(app);
  register_serve(app);
  register_template(app);
}

}  // namespace strata::cli
