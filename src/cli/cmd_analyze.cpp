// softpick analyze CKPT [--data SHARDS] [--seq-len T] [--layout L] [--samples N] [--sink-eps E] [--json OUT]
//                       [--dump-attention L:H,...] [--dump-dir DIR] [--device cpu|cuda] [--threads N]
#include "analysis/analyze.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/check.h"

#include <charconv>

namespace sp {

int cmd_analyze(const Argv& argv) {
  const CommandSpec spec{
      "analyze",
      "CKPT [--data=SHARDS] [--seq-len=T] [--layout=L] [--samples=N] [--sink-eps=E] [--json=OUT] "
      "[--dump-attention=L:H,...] [--dump-dir=DIR]",
      "Measure a checkpoint as the paper does: attention-sink rate, hidden-state kurtosis and extremes, attention "
      "sparsity (docs/analysis.md). CKPT is a checkpoint directory or a run directory (its newest valid "
      "checkpoint). Prints a table; writes JSON to --json, or by default to RUN_DIR/analysis/step_N.json.",
      {{"data", "SHARDS", "glob pattern of token shards (default: the checkpoint's data.val_files)"},
       {"seq-len", "T", "tokens per sequence (default: the checkpoint's training.seq_len)"},
       {"layout", "L", "stream, document or bos: how the shards are cut into sequences (default: the checkpoint's data.layout; docs/data.md)"},
       {"samples", "N", "sequences: the first N windows of the shards in file order (default 8)"},
       {"sink-eps", "E", "a head is a sink when its mean weight on key 0 exceeds E (default 0.3, the paper's)"},
       {"near-zero", "X", "second sparsity threshold, |a| <= X (default 1e-5)"},
       {"json", "OUT", "write the metrics as JSON to OUT"},
       {"dump-attention", "L:H,...", "write the attention map of layer L, head H of the first sequence as .npy"},
       {"dump-dir", "DIR", "directory for --dump-attention (attention_L{L}_H{H}.npy, (T, T) float32)"},
       {"device", "DEVICE", "cpu or cuda (default: the checkpoint's training.device)"},
       {"threads", "N", "CPU threads (default: all cores)"}},
      1, 1};
  const auto parsed = parse_command(spec, argv);
  if (!parsed) return 0;
  const ParsedArgs& a = *parsed;
  AnalyzeRequest req;
  req.checkpoint = a.positional[0];
  req.data = a.get("data").value_or("");
  req.seq_len = a.get_positive("seq-len").value_or(0);
  req.samples = a.get_positive("samples").value_or(8);
  req.layout = a.get("layout").value_or("");
  if (!req.layout.empty() && req.layout != "stream" && req.layout != "document" && req.layout != "bos")
    usage_fail("--layout={}: expected stream, document or bos", req.layout);
  req.json_path = a.get("json").value_or("");
  req.device = a.get("device").value_or("");
  req.threads = int(a.get_int("threads").value_or(0));
  if (req.threads < 0) usage_fail("--threads {}: must be at least 0", req.threads);
  req.options.sink_eps = a.get_double("sink-eps").value_or(0.3);
  if (!(req.options.sink_eps >= 0 && req.options.sink_eps < 1))
    usage_fail("--sink-eps {}: must be in [0, 1)", req.options.sink_eps);
  req.options.near_zero = a.get_double("near-zero").value_or(1e-5);
  if (!(req.options.near_zero >= 0)) usage_fail("--near-zero {}: must be >= 0", req.options.near_zero);
  if (a.has("dump-attention")) req.options.dump = parse_head_list(*a.get("dump-attention"), "dump-attention");
  req.options.dump_dir = a.get("dump-dir").value_or("");
  if (!req.options.dump_dir.empty() && req.options.dump.empty())
    usage_fail("--dump-dir {}: give the maps to write with --dump-attention L:H,...", req.options.dump_dir);
  run_analysis(req);
  return 0;
}

}  // namespace sp
