// The one table of parameters: (Hugging Face name, shape, role) for every tensor of the model, in the
// order of a HF Llama state dict. Offsets into the flat parameter, gradient and optimizer buffers, the
// checkpoint tensor names, the init, weight decay and the FLOP count are all derived from it.
#pragma once

#include "config/config.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sp {

enum class ParamRole {
  Embedding,  // model.embed_tokens.weight        (V, C)
  Matmul,     // q/k/v/o and MLP projections      (out, in)
  Norm,       // RMSNorm weights                  (C)
  Scale,      // SSMax per-head scales            (H)
  Sink,       // per-head attention sink logits   (H)
  LmHead,     // lm_head.weight                   (V, C), absent when tied
};

struct ParamSpec {
  std::string name;             // e.g. "model.layers.3.self_attn.q_proj.weight"
  std::vector<int64_t> shape;   // row-major, PyTorch convention: Linear weights are (out, in)
  ParamRole role;
  size_t offset = 0;            // in elements, into the flat buffer; a multiple of kParamAlign
  size_t numel = 0;
};

// Every tensor starts at a multiple of this many elements (64 bytes in fp32), for vector loads.
constexpr size_t kParamAlign = 16;

// Builds the table for a resolved model config (num_kv_heads and intermediate_size set).
std::vector<ParamSpec> param_specs(const ModelConfig& m);

// Elements of the flat buffer the table describes (the end of the last tensor, padding included).
size_t flat_size(const std::vector<ParamSpec>& specs);

// A run of the flat gradient buffer that the backward pass completes at once, for reducing it while the
// pass goes on: the final norm with the LM head ("head"), each block ("model.layers.l"), the embedding.
// Listed in the order the backward pass finishes them; together they tile [0, P) of a flat buffer of P
// elements (P >= flat_size, the padding belongs to the head bucket).
struct GradBucket {
  std::string name;
  size_t offset = 0, numel = 0;
};
std::vector<GradBucket> grad_buckets(const std::vector<ParamSpec>& specs, size_t P);

}  // namespace sp
