// softpick export CKPT --out DIR  and  softpick import DIR --out RUN_DIR : Hugging Face interop
// (interop/hf.h, docs/interop.md).
#include "cli/args.h"
#include "cli/commands.h"
#include "core/check.h"
#include "interop/hf.h"

#include <iostream>

namespace sp {

int cmd_export(const Argv& argv) {
  const CommandSpec spec{
      "export", "CKPT --out DIR [--dtype fp32|bf16] [--tokenizer SPEC] [--overwrite]",
      "Write a checkpoint (or the newest valid checkpoint of a run directory) as a Hugging Face model directory: "
      "config.json, model.safetensors, generation_config.json and the tokenizer. Softmax models load as "
      "LlamaForCausalLM; the other attentions carry their modeling code (AutoModelForCausalLM with "
      "trust_remote_code=True, or `pip install ./python` and import softpick_hf).",
      {{"out", "DIR", "the directory to write (must not exist or be empty)"},
       {"dtype", "DTYPE", "fp32 (default; the master weights exactly) or bf16"},
       {"tokenizer", "SPEC", "\"byte\" or a tokenizer.json to write (default: the checkpoint's data.tokenizer)"},
       {"overwrite", "", "replace DIR if it exists"}},
      1, 1};
  const auto parsed = parse_command(spec, argv);
  if (!parsed) return 0;
  const ParsedArgs& a = *parsed;
  if (!a.has("out")) usage_fail("export: --out DIR is required\n\n{}", usage(spec));
  ExportOptions opt;
  const std::string dtype = a.get("dtype").value_or("fp32");
  if (dtype == "bf16") opt.dtype = TensorDtype::BF16;
  else if (dtype != "fp32") usage_fail("--dtype={}: expected fp32 or bf16", dtype);
  opt.overwrite = a.has("overwrite");
  opt.tokenizer = a.get("tokenizer").value_or("");
  export_hf(a.positional[0], *a.get("out"), opt);
  return 0;
}

int cmd_import(const Argv& argv) {
  const CommandSpec spec{
      "import", "HF_DIR --out RUN_DIR [--section.key=value ...]",
      "Read a Hugging Face directory (model_type llama, softpick_llama from `softpick export`, or fla's "
      "transformer family, the Softpick paper's released models; safetensors, one file or sharded, "
      "F32/BF16/F16) into RUN_DIR/checkpoints/step_00000000, a weights-only checkpoint that analyze, eval, "
      "sample, export and train --init-from read. Overrides set the run config it records (e.g. "
      "--training.seq_len=4096).",
      {{"out", "RUN_DIR", "the run directory to create (must have no checkpoints yet)"}},
      1, 1, true};
  const auto parsed = parse_command(spec, argv);
  if (!parsed) return 0;
  const ParsedArgs& a = *parsed;
  if (!a.has("out")) usage_fail("import: --out RUN_DIR is required\n\n{}", usage(spec));
  std::cout << import_hf(a.positional[0], *a.get("out"), a.overrides) << "\n";
  return 0;
}

}  // namespace sp
