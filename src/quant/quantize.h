// `softpick quantize`: a checkpoint's linear layers through one of the quantizers of quant/quantizers.h
// (or GPTQ, quant/gptq.h, on calibration data), written as a normal checkpoint of the dequantized weights
// that eval, analyze, sample and export read unchanged (docs/quantization.md).
//
// OUT_DIR/checkpoints/step_N/    N = the source checkpoint's step
//   model.safetensors      the dequantized weights, fp32 (the rest of the model as it was)
//   quantization.json      method, bits, group size, calibration, per-layer errors, sizes, and what the
//                          evaluation must apply (int8: LLM.int8's outlier decomposition)
//   quantized.safetensors  with --packed: the codes bit-packed (U8) and the scales / zeros, the real
//                          storage of the quantized layers
#pragma once

#include "backend/op_args.h"
#include "quant/gptq.h"
#include "quant/quantizers.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace sp::quant {

struct QuantizeOptions {
  Method method = Method::Rtn;
  int bits = 0;            // 0: the method's default (4; nf4/fp4 4, int8 8)
  int64_t group = 0;       // 0: the method's default
  bool include_head = false;  // also the embedding and LM head
  bool packed = false;        // also write quantized.safetensors
  bool overwrite = false;     // replace OUT_DIR's checkpoints
  HqqOptions hqq;
  GptqOptions gptq;        // bits and group are taken from above
  std::string calibration;       // shards (glob); empty: the checkpoint's data.val_files
  int64_t calibration_sequences = 128;
  int64_t calibration_len = 0;   // 0: min(2048, training.seq_len)
  int64_t calibration_batch = 8; // sequences per forward pass
  std::string device;            // the calibration forward's backend; empty: the checkpoint's training.device
  int threads = 0;
};

// Validates `opt` against the method (a usage Error naming the flag otherwise) and fills in the defaults.
QuantizeOptions resolve_options(QuantizeOptions opt);

// The default output directory: the source run directory's path with "-<method><bits>" appended.
std::string default_output_dir(const std::string& checkpoint_dir, const QuantizeOptions& opt);

// Quantizes the checkpoint (or run directory's newest) at `path` into `out_dir`; returns the new
// checkpoint directory. Bad input of any kind is an Error naming the file, tensor or flag.
std::string quantize_checkpoint(const std::string& path, const std::string& out_dir, const QuantizeOptions& opt);

// The quantization.json of a checkpoint directory, or null when it has none (an ordinary checkpoint); an
// Error names the file when it is damaged.
nlohmann::json quantization_record(const std::string& checkpoint_dir);

// What the evaluation of a checkpoint with this quantization.json must apply to the linear layers' inputs:
// LLM.int8's outlier decomposition for int8 weights, nothing otherwise.
ActQuantArgs recorded_act_quant(const nlohmann::json& record);

// --act-quant none|int8|fp8 with --act-quant-scope token|tensor; a usage Error naming the flag otherwise.
ActQuantArgs parse_act_quant(const std::string& kind, const std::string& scope);
std::string act_quant_label(const ActQuantArgs& a);  // "none", "int8 per token", "llm.int8 (outliers >= 6)"

constexpr const char* kQuantizationFile = "quantization.json";
constexpr const char* kPackedFile = "quantized.safetensors";

}  // namespace sp::quant
