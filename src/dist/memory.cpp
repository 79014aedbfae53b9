#include "dist/memory.h"

#include "model/params.h"

#include <algorithm>
#include <cmath>

namespace sp {

namespace {

// Bytes per element of each kind of buffer (the dtypes of src/backend/backend.h).
struct Precision {
  double weight, grad, master, activation, stat;
  bool master_is_weights;  // the weight and master dtypes agree: AdamW updates the weights in place
  double lm_head_logit;    // bytes per element of the LM head's (256, V) chunk: fp32, plus a bf16 copy on GPUs
  bool reduction_scratch;  // the GPU's fixed-order reductions keep per-block partials in scratch memory
};
constexpr Precision kCpuPrecision{4, 4, 4, 4, 4, true, 4, false};
constexpr Precision kGpuPrecision{2, 4, 4, 2, 4, false, 6, true};

// Elements kept per token by Model::forward for the backward pass, plus the shared gradient scratch
// (src/model/model.h, Activations): activations, and the statistics rstd and lse.
struct ActivationElements {
  double values, stats;
};

ActivationElements activation_elements_per_token(const ModelConfig& m) {
  const double C = double(m.hidden_size), L = double(m.num_hidden_layers), H = double(m.num_heads);
  const double D = C / H, HD = H * D, KD = double(*m.num_kv_heads) * D, F = double(*m.intermediate_size);
  const double per_layer = 3 * C + HD + 2 * KD + (m.ssmax ? HD : 0) + HD + 3 * F;  // ln1..act
  const double scratch = 3 * C + 2 * HD + (m.ssmax ? HD : 0) + 2 * KD + 3 * F;
  return {(L + 1) * C + L * per_layer + C + scratch, L * (2 + H) + 1};  // stats: rstd1, rstd2, lse; final rstd
}

MemoryBreakdown memory_per_rank(const Config& c, int W, const Precision& p) {
  const double P = double(flat_size(param_specs(c.model)));
  const bool zero = c.distributed.zero_stage == 1 && W > 1;
  const double shard = zero ? P / W : P;  // elements of the optimizer state on this rank
  const double T = double(c.training.seq_len), tokens = double(c.training.batch_size) * T;
  const ActivationElements a = activation_elements_per_token(c.model);
  MemoryBreakdown m;
  m.weights = p.weight * P;
  m.gradients = p.grad * (P + (zero ? shard : 0));  // plus the reduced shard under ZeRO-1
  m.optimizer = shard * (2 + (p.master_is_weights ? 0 : 1)) * p.master;  // moments (+ master)
  // the batch's activations and those of one sequence (the training loop's samples)
  m.activations = (tokens + T) * (p.activation * a.values + p.stat * a.stats);
  m.activations += p.lm_head_logit * std::min(256.0, tokens) * double(c.model.vocab_size);  // the LM head's chunk
  if (p.reduction_scratch) {
    const double C = double(c.model.hidden_size), H = double(c.model.num_heads);
    m.activations += 8 * tokens;  // the LM head's per-row losses and target flags
    // one slot shared by RMSNorm's dw partials (at most 512 parts, fp64) and attention's delta (B, H, T)
    m.activations += std::max(8 * std::min(512.0, tokens) * C, 4 * tokens * H);
  }
  return m;
}

}  // namespace

MemoryBreakdown cpu_memory_per_rank(const Config& c, int W) { return memory_per_rank(c, W, kCpuPrecision); }

MemoryBreakdown gpu_memory_per_rank(const Config& c, int W) { return memory_per_rank(c, W, kGpuPrecision); }

nlohmann::ordered_json memory_report(const Config& c, int W) {
  auto gib = [](const MemoryBreakdown& m) {
    auto r = [](double b) { return std::round(b / double(1 << 30) * 1000) / 1000; };
    return nlohmann::ordered_json{{"weights_gib", r(m.weights)}, {"gradients_gib", r(m.gradients)},
                                  {"optimizer_gib", r(m.optimizer)}, {"activations_gib", r(m.activations)},
                                  {"total_gib", r(m.total())}};
  };
  return {{"world_size", W}, {"zero_stage", c.distributed.zero_stage},
          {"cpu_fp32", gib(cpu_memory_per_rank(c, W))}, {"gpu_bf16", gib(gpu_memory_per_rank(c, W))}};
}

}  // namespace sp
