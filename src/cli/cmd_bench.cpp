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
      "bench", "CONFIG.json [--device=cpu|cuda] [--steps=N] [--attention-T=256,512,...] [--attention-D=64,128] "
      "[--only=train|attention] "
      "[--section.key=value ...]",
      "Measure training-step time, tokens/s and GFLOP/s on training.device against its peak (on the CPU its "
      "measured fp32 GEMM rate), and the attention alone on the same device, forward and backward (softpick vs "
      "softmax; on the CPU also flash vs naive) over a range of sequence lengths.",
      {{"device", "DEVICE", "cpu or cuda: the same as --training.device=DEVICE"},
       {"steps", "N", "timed training steps after one warm-up step (default 3)"},
       {"attention-T", "LIST", "comma-separated sequence lengths for the attention table (default: CPU 256..4096, "
                               "GPU 512..16384, the CUDA execution harness 64,128)"},
       {"attention-D", "LIST", "comma-separated head dims for the attention table (default: the config's)"},
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
  auto positive_list = [&](const char* flag) {
    std::vector<int64_t> values;
    if (auto list = a.get(flag)) {
      std::stringstream ss(*list);
      for (std::string item; std::getline(ss, item, ',');) {
        try {
          values.push_back(std::stoll(item));
        } catch (const std::exception&) {
          usage_fail("--{}={}: \"{}\" is not an integer", flag, *list, item);
        }
        if (values.back() < 1) usage_fail("--{}={}: the values must be positive", flag, *list);
      }
    }
    return values;
  };
  opt.attention_T = positive_list("attention-T");
  opt.attention_D = positive_list("attention-D");
  if (auto only = a.get("only")) {
    if (*only != "train" && *only != "attention") usage_fail("--only={}: use train or attention", *only);
    opt.train = *only == "train";
    opt.attention = *only == "attention";
  }
  run_bench(c, opt);
  return 0;
}

}  // namespace sp
