#include "dist/memory.h"

#include "model/params.h"

#include <cmath>

namespace sp {

namespace {

// Bytes per element of each kind of buffer (the dtypes of src/backend/backend.h).
struct Precision {
  double weight, grad, master, activation, stat;
  bool master_is_weights;  // the weight and master dtypes agree: AdamW updates the weights in place
};
constexpr Precision kCpuPrecision{4, 4, 4, 4, 4, true};
constexpr Precision kGpuPrecision{2, 4, 4, 2, 4, false};

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
  const double tokens = double(c.training.batch_size * c.training.seq_len);
  const ActivationElements a = activation_elements_per_token(c.model);
  const double lm_head_scratch = 256.0 * double(c.model.vocab_size);  // (256, V) logits
  MemoryBreakdown m;
  m.weights = p.weight * P;
  m.gradients = p.grad * (P + (zero ? shard : 0));  // plus the reduced shard under ZeRO-1
  m.optimizer = shard * (2 + (p.master_is_weights ? 0 : 1)) * p.master;  // moments (+ master)
  m.activations = tokens * (p.activation * a.values + p.stat * a.stats) + p.activation * lm_head_scratch;
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
