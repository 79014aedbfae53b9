// The Llama model with a switchable attention normaliser, written once over the Backend interface.
//
//   tokens (B, T) -> embedding -> L x [ x += o_proj(attention(rope(q), rope(k), v) of rmsnorm(x));
//                                       x += down_proj(silu(gate_proj(h)) * up_proj(h)), h = rmsnorm(x) ]
//                 -> rmsnorm -> lm_head -> cross-entropy
//
// Three plain parts: the config (ModelConfig), the weights (Model: flat parameter and gradient buffers
// with per-tensor views from the one parameter table), and the activations (Activations, sized for a
// batch shape). A training step is forward() + loss(with gradients) + backward(); evaluation is forward()
// + loss(); the loss sums stay on the device until take_loss() reads them, once per step or evaluation.
// Generation and task scoring use the key/value-cached pass of model/decode.h over the same weights.
// docs/architecture.md walks through it.
#pragma once

#include "backend/backend.h"
#include "config/config.h"
#include "model/params.h"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace sp {

// Reads a loss accumulator (2, kAccumDType) and zeroes it: a sync point (the download).
LossSum take_loss(Backend& be, Buffer loss);

// The dimension letters of docs/architecture.md for a resolved model config.
struct ModelDims {
  int64_t C, L, H, Hkv, D, F, V;
  explicit ModelDims(const ModelConfig& m)
      : C(m.hidden_size), L(m.num_hidden_layers), H(m.num_heads), Hkv(*m.num_kv_heads), D(C / H),
        F(*m.intermediate_size), V(m.vocab_size) {}
};

// Views of one block's parameters (or of their gradients) in a flat buffer.
struct LayerTensors {
  Buffer ln1, q, k, v, o, ssmax, ln2, gate, up, down;  // ssmax is empty unless model.ssmax
};

struct ModelTensors {
  Buffer embed, norm, lm_head;  // lm_head aliases embed when tied
  std::vector<LayerTensors> layers;
};

// Activations of one forward pass, kept for the backward pass, plus the gradient scratch.
// Allocated for at most (B, T); a pass may use a shorter T (sampling). Buffers are activation_dtype(),
// except the statistics rstd and lse (stat_dtype()) and tokens and targets (I32).
struct Activations {
  int64_t B = 0, T = 0;       // capacity
  int64_t cur_B = 0, cur_T = 0;  // shape of the last forward()
  Buffer tokens, targets;      // (B, T) i32
  std::vector<Buffer> resid;   // L + 1 of (B, T, C): input of block l; resid[L] is the last block's output
  struct Layer {
    Buffer ln1, rstd1;         // (B, T, C), (B, T)
    Buffer q, k, v;            // (B, T, H, D) after RoPE, (B, T, Hkv, D) after RoPE, (B, T, Hkv, D)
    Buffer q_scaled;           // (B, T, H, D) SSMax-scaled q (only with model.ssmax)
    Buffer att, lse;           // (B, T, H, D), (B, H, T)
    Buffer mid;                // (B, T, C) residual after attention
    Buffer ln2, rstd2;         // (B, T, C), (B, T)
    Buffer gate, up, act;      // (B, T, F) each
  };
  std::vector<Layer> layers;
  Buffer final_norm, final_rstd;  // (B, T, C), (B, T)
  // gradient scratch, shared by all layers
  Buffer d_resid, d_ln, d_final;  // (B, T, C)
  Buffer d_q, d_q_scaled, d_att;  // (B, T, H, D)
  Buffer d_k, d_v;                // (B, T, Hkv, D)
  Buffer d_gate, d_up, d_act;     // (B, T, F)
  Buffer logits;                  // (V) for sampling
  Buffer loss;                    // (2) kAccumDType: [sum of nats, rows with a target], added to by loss()
};

class Model {
public:
  // The flat buffers are padded to a multiple of `pad_multiple` elements (ZeRO-1 shards them evenly).
  Model(const ModelConfig& cfg, Backend& backend, size_t pad_multiple = 1);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return cfg_; }
  const std::vector<ParamSpec>& specs() const { return specs_; }
  Backend& backend() { return be_; }
  size_t num_params() const { return params_.numel; }

  Buffer params() const { return params_; }  // (P) flat, tensors at specs()[i].offset: the working copy
  Buffer grads() const { return grads_; }    // (P) same layout, grad_dtype()
  Buffer tensor(Buffer flat, const std::string& name) const;
  const ModelTensors& weights() const { return w_; }  // views into params(), for other passes (decode.h)

  // The init: N(0, initializer_range) for Linear and Embedding weights, 1 for norms, ssmax_init for SSMax
  // scales; every tensor from its own stream of the seed, so the init does not depend on tensor order.
  // initial_weights() is the init in fp32 (P values, padding 0), the master weights' precision: training
  // hands it to AdamW::set_master_weights, which sets the master and the working copy. init_weights()
  // writes it straight into params() from the fp64 draws, for passes without an optimizer (evaluation,
  // tests); on an f32 backend both give the same bits.
  std::vector<float> initial_weights(uint64_t seed) const;
  void init_weights(uint64_t seed);
  void zero_grads();

  Activations make_activations(int64_t B, int64_t T);
  void free_activations(Activations& a);

  // Runs the blocks and the final norm on tokens (B, T) (host memory, B <= a.B, T <= a.T).
  void forward(Activations& a, std::span<const int32_t> tokens, int64_t B, int64_t T);
  // Adds the cross-entropy of the last forward() against targets (B, T) (host, < 0 = ignored) to a.loss,
  // on the device. With gradients, also seeds the backward pass: the LM head gradient accumulates and
  // d(final norm) is stored.
  void loss(Activations& a, std::span<const int32_t> targets, bool with_grad, double grad_scale);
  // The loss added since the last take_loss(), read once after a loop of loss() calls; a sync point.
  LossSum take_loss(Activations& a) { return sp::take_loss(be_, a.loss); }
  // Accumulates every parameter gradient of the last forward() + loss(with_grad) into grads().
  void backward(Activations& a);
  // Logits (V) of the last position of sequence 0 of the last forward(), into host memory.
  void last_logits(Activations& a, std::span<float> logits);

private:
  AttentionShape attention_shape(int64_t B, int64_t T) const;
  std::vector<double> init_values(size_t i, uint64_t seed) const;  // tensor specs_[i]'s init, host fp64
  ModelTensors views(Buffer flat) const;

  ModelConfig cfg_;
  Backend& be_;
  std::vector<ParamSpec> specs_;
  Buffer params_, grads_;
  ModelTensors w_, g_;  // views into params_ and grads_
  ModelDims d_;
};

Normaliser normaliser_from_name(const std::string& name);

}  // namespace sp
