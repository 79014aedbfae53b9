// softpick train CONFIG.json [--overwrite] [--init-from=CKPT] [--section.key=value ...]
#include "cli/args.h"
#include "cli/commands.h"
#include "config/config.h"
#include "core/check.h"
#include "train/trainer.h"

#include <iostream>

namespace sp {

int cmd_train(const Argv& argv) {
  const CommandSpec spec{
      "train", "CONFIG.json [--overwrite] [--init-from=CKPT] [--section.key=value ...]",
      "Train a model as the config describes, on training.device; metrics and checkpoints go to training.run_dir. "
      "By default (checkpoint.resume = auto) the run continues from its newest valid checkpoint.",
      {{"overwrite", "", "with --checkpoint.resume=never: delete the run directory's checkpoints first"},
       {"init-from", "CKPT", "start a new run from this checkpoint's weights (not its optimizer state or step)"}},
      1, 1, true};
  const auto parsed = parse_command(spec, argv);
  if (!parsed) return 0;
  const ParsedArgs& a = *parsed;
  Config c = load_config(a.positional[0], a.overrides);
  TrainOptions opt;
  opt.overwrite = a.has("overwrite");
  opt.init_from = a.get("init-from").value_or("");
  if (opt.overwrite && c.checkpoint.resume != "never")
    usage_fail("--overwrite deletes checkpoints and only goes with --checkpoint.resume=never");
  TrainSummary s = train(c, opt);
  return s.interrupted ? 130 : 0;
}

}  // namespace sp
