// softpick train CONFIG.json [--section.key=value ...]
#include "cli/args.h"
#include "cli/commands.h"
#include "config/config.h"
#include "core/check.h"
#include "train/trainer.h"

#include <iostream>

namespace sp {

int cmd_train(const Argv& argv) {
  const CommandSpec spec{"train", "CONFIG.json [--section.key=value ...]",
                         "Train a model on the CPU as the config describes; metrics go to training.run_dir.",
                         {}, 1, 1, true};
  ParsedArgs a = parse_args(spec, argv);
  if (a.help) {
    std::cout << usage(spec);
    return 0;
  }
  Config c = load_config(a.positional[0], a.overrides);
  TrainSummary s = train(c);
  return s.interrupted ? 130 : 0;
}

}  // namespace sp
