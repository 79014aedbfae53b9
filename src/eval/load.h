// Loading a checkpoint for inference (`softpick eval`, `softpick sample`): the weights on the backend of
// its training.device (or --device), the resolved config stored with them, the context, and the tokenizer.
#pragma once

#include "backend/backend.h"
#include "config/config.h"
#include "data/tokenizer.h"
#include "model/model.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace sp {

struct InferenceModel {
  std::string dir;  // the checkpoint directory
  Config config;    // as stored in the checkpoint, training.device as used
  int64_t step = 0;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
  nlohmann::json quantization;  // the checkpoint's quantization.json (softpick quantize), or null
};

// `path` is a checkpoint directory, or a run directory (then its newest valid checkpoint). `device` ("cpu",
// "cuda") overrides the checkpoint's training.device unless empty. threads <= 0: the checkpoint's
// training.threads, else every core. A quantized checkpoint's model applies what its quantization.json
// asks of the evaluation (LLM.int8's outlier decomposition). An Error names the file, key or flag on any problem.
InferenceModel load_inference_model(const std::string& path, const std::string& device, int threads);

// The context in tokens: `requested` when > 0, else the trained training.seq_len. Above the trained
// length a warning says that RoPE and SSMax were never trained at those positions.
int64_t inference_context(const Config& c, int64_t requested);

// `spec` ("byte" or a tokenizer.json) when given, else the checkpoint's data.tokenizer. A tokenizer.json
// recorded by the checkpoint but absent on this machine gives nullopt and a warning; one with more ids than
// the model's vocabulary is an Error.
std::optional<Tokenizer> load_model_tokenizer(const Config& c, const std::string& spec);

}  // namespace sp
