// The subcommands of `softpick`. Each takes its arguments (after the command name) and returns the exit
// code; bad input is reported by throwing sp::Error, which main() prints.
#pragma once

#include <string>
#include <vector>

namespace sp {

using Argv = std::vector<std::string>;

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const Argv& args);
};

int cmd_config(const Argv& args);
int cmd_data(const Argv& args);
int cmd_train(const Argv& args);
int cmd_bench(const Argv& args);
int cmd_checkpoint(const Argv& args);
int cmd_eval(const Argv& args);
int cmd_sample(const Argv& args);
int cmd_analyze(const Argv& args);
int cmd_export(const Argv& args);
int cmd_import(const Argv& args);
int cmd_quantize(const Argv& args);

}  // namespace sp
