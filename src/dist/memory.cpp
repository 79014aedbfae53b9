#include "dist/memory.h"

#include "model/params.h"

#include <cmath>

namespace sp {

namespace {

// Activation elements kept per token by Model::forward for the backward pass, plus the shared gradient
// scratch (src/model/model.h, Activations).
double activation_elements_per_token(const ModelConfig& m) {
  const double C = double(m.hidden_size), L = double(m.num_hidden_layers), H = double(m.num_heads);
  const double D = C / H, HD = H * D, KD = double(*m.num_kv_heads) * D, F = double(*m.intermediate_size);
  const double per_layer = 3 * C + 2 + HD + 2 * KD + (m.ssmax ? HD : 0) + HD + H + 3 * F;  // ln1..act
  const double scratch = 3 * C + 2 * HD + (m.ssmax ? HD : 0) + 2 * KD + 3 * F;
  return (L + 1) * C + L * per_layer + C + 1 + scratch;
}

double params(const Config& c) { return double(flat_size(param_specs(c.model))); }

}  // namespace

MemoryBreakdown cpu_memory_per_rank(const Config& c, int W) {
  const double P = params(c);
  const bool zero = c.distributed.zero_stage == 1 && W > 1;
  const double tokens = double(c.training.batch_size * c.training.seq_len);
  MemoryBreakdown m;
  m.weights = 4 * P;
  m.gradients = 4 * P + (zero ? 4 * P / W : 0);
  m.optimizer = zero ? 8 * P / W : 8 * P;
  m.activations = 4 * (tokens * activation_elements_per_token(c.model) + 256.0 * double(c.model.vocab_size));
  return m;
}

MemoryBreakdown gpu_memory_per_rank(const Config& c, int W) {
  const double P = params(c);
  const bool zero = c.distributed.zero_stage == 1 && W > 1;
  const double tokens = double(c.training.batch_size * c.training.seq_len);
  MemoryBreakdown m;
  m.weights = 2 * P + (zero ? 4 * P / W : 4 * P);  // bf16 compute copy + fp32 master (sharded)
  m.gradients = 4 * P;                             // fp32, reduced in fp32
  m.optimizer = zero ? 8 * P / W : 8 * P;
  m.activations = 2 * (tokens * activation_elements_per_token(c.model) + 256.0 * double(c.model.vocab_size));
  return m;
}

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
