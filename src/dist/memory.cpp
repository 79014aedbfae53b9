#include "dist/memory.h"

#include "model/activations.h"
#include "model/decode.h"
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

// Bytes of the buffers a table lists (model/activations.h), at this precision.
double bytes_of(const std::vector<ActivationSpec>& specs, const Precision& p) {
  double bytes = 0;
  for (const ActivationSpec& s : specs) {
    const double per = s.kind == ActKind::Value  ? p.activation
                       : s.kind == ActKind::Stat ? p.stat
                       : s.kind == ActKind::Token ? 4.0
                                                  : double(dtype_size(kAccumDType));
    bytes += per * double(s.numel());
  }
  return bytes;
}

MemoryBreakdown memory_per_rank(const Config& c, int W, const Precision& p) {
  const double P = double(flat_size(param_specs(c.model)));
  const bool zero = c.distributed.zero_stage == 1 && W > 1;
  const double shard = zero ? P / W : P;  // elements of the optimizer state on this rank
  const int64_t B = c.training.batch_size, T = c.training.seq_len;
  const double tokens = double(B * T);
  MemoryBreakdown m;
  m.weights = p.weight * P;
  m.gradients = p.grad * (P + (zero ? shard : 0));  // plus the reduced shard under ZeRO-1
  // bf16 copies for the collective (GPUs only: the CPU backend has no bf16 and refuses the option)
  if (c.distributed.reduce_dtype == "bf16" && W > 1 && p.activation == 2) m.gradients += 2 * (P + (zero ? shard : 0));
  m.optimizer = shard * (2 + (p.master_is_weights ? 0 : 1)) * p.master;  // moments (+ master)
  // the batch's activations, the samples' decoder, and (rank 0, while it runs) the periodic analysis's
  // activations of one sequence
  m.activations = bytes_of(activation_specs(c.model, B, T, recompute_from_name(c.training.activation_checkpointing)), p);
  m.activations += bytes_of(decoder_specs(c.model, T, std::min(T, kDecodeChunk)), p);
  if (c.logging.analysis_interval) m.activations += bytes_of(activation_specs(c.model, 1, T, Recompute::None), p);
  m.activations += p.lm_head_logit * std::min(256.0, tokens) * double(c.model.vocab_size);  // the LM head's chunk
  if (p.reduction_scratch) {
    const double C = double(c.model.hidden_size), H = double(c.model.num_heads);
    m.activations += 8 * tokens;  // the LM head's per-row losses and target flags
    // one slot shared by RMSNorm's dw partials (at most 512 parts, fp64) and attention's delta (B, H, T),
    // plus, with the atomic attention backward, its fp32 dq accumulator (B, T, H, D)
    const double D = C / H;
    const double attention = 4 * tokens * H * (1 + (c.training.attention_backward == "atomic" ? D : 0));
    m.activations += std::max(8 * std::min(512.0, tokens) * C, attention);
    m.activations += double(kGpuMatmulWorkspaceBytes);
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
  // the total under each training.activation_checkpointing, the configured one included
  nlohmann::ordered_json by_choice;
  for (const Recompute r : {Recompute::None, Recompute::Attention, Recompute::Full}) {
    Config other = c;
    other.training.activation_checkpointing = recompute_name(r);
    by_choice[recompute_name(r)] = {{"cpu_fp32_total_gib", gib(cpu_memory_per_rank(other, W))["total_gib"]},
                                    {"gpu_bf16_total_gib", gib(gpu_memory_per_rank(other, W))["total_gib"]}};
  }
  return {{"world_size", W},
          {"zero_stage", c.distributed.zero_stage},
          {"activation_checkpointing", c.training.activation_checkpointing},
          {"cpu_fp32", gib(cpu_memory_per_rank(c, W))},
          {"gpu_bf16", gib(gpu_memory_per_rank(c, W))},
          {"by_activation_checkpointing", by_choice}};
}

}  // namespace sp
