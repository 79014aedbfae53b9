// softpick quantize CKPT --method M --bits N [--group-size G] [--out DIR]: weight-only quantization into a
// checkpoint of the dequantized weights (quant/quantize.h, docs/quantization.md).
#include "checkpoint/checkpoint.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/check.h"
#include "quant/quantize.h"

#include <iostream>

namespace sp {

int cmd_quantize(const Argv& argv) {
  const CommandSpec spec{
      "quantize", "CKPT --method M [--bits N] [--group-size G] [--out DIR] [--packed] [--include-head]",
      "Quantize the linear layers of a checkpoint (or a run directory's newest) with one method and write a "
      "checkpoint of the dequantized weights plus quantization.json, which eval, analyze, sample and export read "
      "like any other (docs/quantization.md).",
      {{"method", "M", "rtn, hqq, nf4, fp4, int8 or gptq"},
       {"bits", "N", "2 to 8 (rtn, hqq, gptq; default 4); nf4 and fp4 are 4 bits, int8 8"},
       {"group-size", "G", "consecutive input elements per scale (default: 64; gptq 128; int8 one per row)"},
       {"out", "DIR", "the run directory to write (default: the source run's directory + \"-<method><bits>\")"},
       {"overwrite", "", "replace the checkpoints DIR already holds"},
       {"packed", "", "also write quantized.safetensors: the bit-packed codes and their scales and zeros"},
       {"include-head", "", "also quantize the embedding and the LM head (not with gptq)"},
       {"calibration", "SHARDS", "gptq: calibration token shards (default: the checkpoint's data.val_files)"},
       {"calibration-sequences", "N", "gptq: calibration sequences (default 128)"},
       {"calibration-len", "T", "gptq: tokens per sequence (default: 2048, at most training.seq_len)"},
       {"calibration-batch", "N", "gptq: sequences per forward pass (default 8)"},
       {"damp", "F", "gptq: damping, times the mean diagonal of the Hessian (default 0.01)"},
       {"block-size", "N", "gptq: columns per lazy batch update (default 128)"},
       {"act-order", "", "gptq: quantize columns in order of decreasing Hessian diagonal (static groups)"},
       {"device", "DEVICE", "gptq: the backend of the calibration passes, cpu or cuda (default: training.device)"},
       {"threads", "N", "CPU threads (default: the checkpoint's training.threads, else all cores)"}},
      1, 1};
  const auto parsed = parse_command(spec, argv);
  if (!parsed) return 0;
  const ParsedArgs& a = *parsed;
  if (!a.has("method")) usage_fail("quantize: --method is required ({})\n\n{}", quant::method_names(), usage(spec));
  const auto method = quant::method_from_name(*a.get("method"));
  if (!method) usage_fail("--method {}: unknown; expected one of {}", *a.get("method"), quant::method_names());
  for (const char* f : {"group-size", "calibration-sequences", "calibration-len", "calibration-batch", "block-size",
                        "threads"})
    a.get_positive(f);
  quant::QuantizeOptions opt;
  opt.method = *method;
  opt.bits = int(a.get_int("bits").value_or(0));
  if (a.has("bits") && opt.bits == 0) usage_fail("--bits 0: must be 2 to 8");
  opt.group = a.get_int("group-size").value_or(0);
  opt.include_head = a.has("include-head");
  opt.packed = a.has("packed");
  opt.overwrite = a.has("overwrite");
  opt.calibration = a.get("calibration").value_or("");
  if (a.has("calibration") && opt.calibration.empty()) usage_fail("--calibration: expected a glob of token shards");
  opt.calibration_sequences = a.get_int("calibration-sequences").value_or(128);
  opt.calibration_len = a.get_int("calibration-len").value_or(0);
  opt.calibration_batch = a.get_int("calibration-batch").value_or(8);
  opt.gptq.damp = a.get_double("damp").value_or(0.01);
  opt.gptq.block = a.get_int("block-size").value_or(128);
  opt.gptq.act_order = a.has("act-order");
  opt.device = a.get("device").value_or("");
  opt.threads = int(a.get_int("threads").value_or(0));
  if (method != quant::Method::Gptq)
    for (const char* f : {"calibration-sequences", "calibration-len", "calibration-batch", "damp", "block-size",
                          "act-order", "device"})
      if (a.has(f)) usage_fail("--{}: only gptq takes it", f);
  const quant::QuantizeOptions resolved = quant::resolve_options(opt);
  std::string out = a.get("out").value_or("");
  if (a.has("out") && out.empty()) usage_fail("--out: expected a directory");
  if (out.empty()) {
    nlohmann::json state;
    out = quant::default_output_dir(resolve_checkpoint(a.positional[0], state), resolved);
  }
  std::cout << quant::quantize_checkpoint(a.positional[0], out, opt) << "\n";
  return 0;
}

}  // namespace sp
