// softpick bench CONFIG.json [--device cpu|cuda] [--section.key=value ...]
#include "bench/bench.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "config/config.h"
#include "core/check.h"

#include <iostream>
#include <sstream>

namespace sp {

int cmd_bench(const Argv& argv) {
  const CommandSpec spec{
      "bench", "CONFIG.json [--device=cpu|cuda] [--steps=N] [--attention-T=256,512,...] [--only=train|attention] "
      "[--section.key=value ...]",
      "Measure training-step time, tokens/s and GFLOP/s on training.device against its peak (on the CPU its "
      "measured fp32 GEMM rate), and the CPU's attention alone (flash vs naive, softpick vs softmax) over a "
      "range of sequence lengths.",
      {{"device", "DEVICE", "cpu or cuda: the same as --training.device=DEVICE"},
       {"steps", "N", "timed training steps after one warm-up step (default 3)"},
       {"attention-T", "LIST", "comma-separated sequence lengths for the attention table (default 256..4096)"},
       {"only", "WHAT", "run only the `train` or the `attention` part"}},
      1, 1, true};
  const auto parsed = parse_command(spec, argv);
  if (!parsed) return 0;
  const ParsedArgs& a = *parsed;
  std::vector<std::string> overrides = a.overrides;
  if (auto device = a.get("device")) overrides.push_back("training.device=" + *device);
  Config c = load_config(a.positional[0], overrides);
  BenchOptions opt;
  opt.steps = a.get_positive("steps").value_or(opt.steps);
  if (auto list = a.get("attention-T")) {
    opt.attention_T.clear();
    std::stringstream ss(*list);
    for (std::string item; std::getline(ss, item, ',');) {
      try {
        opt.attention_T.push_back(std::stoll(item));
      } catch (const std::exception&) {
        usage_fail("--attention-T={}: \"{}\" is not an integer", *list, item);
      }
      if (opt.attention_T.back() < 1) usage_fail("--attention-T: sequence lengths must be positive");
    }
  }
  if (auto only = a.get("only")) {
    if (*only != "train" && *only != "attention") usage_fail("--only={}: use train or attention", *only);
    opt.train = *only == "train";
    opt.attention = *only == "attention";
  }
  run_bench(c, opt);
  return 0;
}

}  // namespace sp
