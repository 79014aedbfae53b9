// Hugging Face interop (docs/interop.md): a checkpoint to a directory that transformers loads, and a
// transformers Llama or fla `transformer` directory to a softpick.cpp checkpoint.
//
//   export: config.json (a LlamaConfig; softpick_* keys for the attention), model.safetensors,
//           generation_config.json, tokenizer.json + tokenizer_config.json, and, for every model that is
//           not plain softmax Llama, configuration_softpick.py + modeling_softpick.py with an auto_map
//   import: config.json + model.safetensors (or model.safetensors.index.json and its shards; F32, BF16,
//           F16) of model_type llama, softpick_llama or fla's transformer family, into
//           RUN_DIR/checkpoints/step_00000000 (weights only) and RUN_DIR/tokenizer.json when there is one
#pragma once

#include "checkpoint/safetensors.h"
#include "config/config.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace sp {

// Plain softmax without SSMax or the gate: exported as LlamaForCausalLM, no code of ours needed.
bool is_plain_llama(const ModelConfig& m);

// config.json of an export. `tokenizer` is "byte" or "tokenizer.json" (what the directory holds).
nlohmann::ordered_json hf_config_json(const Config& c, TensorDtype dtype, int64_t step);

// tokenizer.json for the byte vocabulary (data/tokenizer.h): ByteLevel bytes, one token each, id = byte + 3,
// BOS put in front of every encoded text, so it encodes and decodes as `softpick sample` does.
nlohmann::ordered_json byte_tokenizer_json();

// The model config of an HF config.json (`path` names it in messages): llama, softpick_llama (our export;
// its softpick_config restores the whole run config) or fla's transformer family. Anything softpick.cpp
// cannot represent is an Error naming the file and key. `format` gets "llama", "softpick_llama" or "fla".
Config config_from_hf(const nlohmann::json& hf, const std::string& path, std::string& format);

// Checkpoint tensor names from the tensor names of a format ("fla": model.embeddings -> model.embed_tokens,
// attn_norm -> input_layernorm, attn. -> self_attn., mlp_norm -> post_attention_layernorm, attn.s ->
// self_attn.ssmax_scale). Identity for llama and softpick_llama.
std::string checkpoint_name_of(const std::string& format, const std::string& hf_name);

struct ExportOptions {
  TensorDtype dtype = TensorDtype::F32;
  bool overwrite = false;  // replace an existing non-empty --out
  std::string tokenizer;   // "byte" or a tokenizer.json to write instead of the checkpoint's data.tokenizer
};

// Writes the export of a checkpoint (or a run directory's newest valid checkpoint) into out_dir, via a
// temporary sibling directory renamed into place. Returns the checkpoint directory it read.
std::string export_hf(const std::string& checkpoint_or_run, const std::string& out_dir, const ExportOptions& opt);

// Imports an HF directory into run_dir/checkpoints/step_00000000; `overrides` ("section.key=value") are
// applied to the run config it records. Returns the checkpoint directory written.
std::string import_hf(const std::string& hf_dir, const std::string& run_dir, const std::vector<std::string>& overrides);

}  // namespace sp
