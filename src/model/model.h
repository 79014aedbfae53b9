// The Llama model with a switchable attention normaliser, written once over the Backend interface.
//
//   tokens (B, T) -> embedding -> L x [ x += o_proj(attention(rope(q), rope(k), v) of rmsnorm(x));
//                                       (with model.attention_gate, attention(..) * sigmoid(gate_proj(..)))
//                                       x += down_proj(silu(gate_proj(h)) * up_proj(h)), h = rmsnorm(x) ]
//                 -> rmsnorm -> lm_head -> cross-entropy
//
// Three plain parts: the config (ModelConfig), the weights (Model: flat parameter and gradient buffers
// with per-tensor views from the one parameter table), and the activations (Activations, sized for a
// batch shape, from the one activation table of model/activations.h). A training step is forward() + loss(with gradients) + backward(); evaluation is forward()
// + loss(); the loss sums stay on the device until take_loss() reads them, once per step or evaluation.
// Generation and task scoring use the key/value-cached pass of model/decode.h over the same weights.
// docs/architecture.md walks through it.
#pragma once

#include "backend/backend.h"
#include "config/config.h"
#include "model/activations.h"
#include "model/params.h"

#include <cstdint>
#include <functional>
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
  // ssmax is empty unless model.ssmax, sinks unless model.attention = sink, att_gate unless
  // model.attention_gate (self_attn.gate_proj); gate is the MLP's gate_proj
  Buffer ln1, q, k, v, o, ssmax, sinks, att_gate, ln2, gate, up, down;
};

struct ModelTensors {
  Buffer embed, norm, lm_head;  // lm_head aliases embed when tied
  std::vector<LayerTensors> layers;
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

  // The init: N(0, initializer_range) for Linear and Embedding weights and attention sink logits, 1 for
  // norms, ssmax_init for SSMax scales; every tensor from its own stream of the seed, so the init does not depend on tensor order.
  // initial_weights() is the init in fp32 (P values, padding 0), the master weights' precision: training
  // hands it to AdamW::set_master_weights, which sets the master and the working copy. init_weights()
  // writes it straight into params() from the fp64 draws, for passes without an optimizer (evaluation,
  // tests); on an f32 backend both give the same bits.
  std::vector<float> initial_weights(uint64_t seed) const;
  void init_weights(uint64_t seed);
  void zero_grads();

  // Allocates the activations of activation_specs(config(), B, T, r) (model/activations.h); frees them.
  // With r != None, backward() recomputes what the forward did not keep.
  Activations make_activations(int64_t B, int64_t T, Recompute r = Recompute::None);
  void free_activations(Activations& a);

  // Runs the blocks and the final norm on tokens (B, T) (host memory, B <= a.B, T <= a.T).
  void forward(Activations& a, std::span<const int32_t> tokens, int64_t B, int64_t T);
  // Block l on the rows of s's queries: out (B, Tq, C) = block(in (B, Tq, C)), the intermediates in x.
  // RoPE and SSMax start at position s.q_offset; with an offset, B must be 1 (the decoder). out may alias in.
  // The one block of the model: forward() and the key/value-cached decoder (decode.h) both call it.
  void block_forward(int64_t l, const BlockActivations& x, Buffer in, Buffer out, const AttentionShape& s);
  AttentionShape attention_shape(int64_t B, int64_t T) const;  // training's: no query offset
  // Adds the cross-entropy of the last forward() against targets (B, T) (host, < 0 = ignored) to a.loss,
  // on the device. With gradients, also seeds the backward pass: the LM head gradient accumulates and
  // d(final norm) is stored.
  void loss(Activations& a, std::span<const int32_t> targets, bool with_grad, double grad_scale);
  // The loss added since the last take_loss(), read once after a loop of loss() calls; a sync point.
  LossSum take_loss(Activations& a) { return sp::take_loss(be_, a.loss); }
  // Accumulates every parameter gradient of the last forward() + loss(with_grad) into grads(). After the
  // backward work of grad_buckets()[i] is issued, calls bucket_ready(i), for i = 0, 1, ... in order (the
  // gradient reduction overlapping the rest of the pass).
  void backward(Activations& a, const std::function<void(size_t)>& bucket_ready = {});
  // The buckets of grads(), in the order backward() completes them (model/params.h).
  const std::vector<GradBucket>& grad_buckets() const { return buckets_; }
  // Evaluation only: fake-quantize the input of every linear layer of the blocks (q, k, v, the output
  // gate, o, gate, up, down) in place before its product (ActQuantArgs in backend/op_args.h;
  // docs/quantization.md). The embedding, the LM head and attention itself are left as they are.
  void set_activation_quant(const ActQuantArgs& a) { act_quant_ = a; }
  const ActQuantArgs& activation_quant() const { return act_quant_; }
  // Logits (V) of the last position of sequence 0 of the last forward(), into host memory.
  void last_logits(Activations& a, std::span<float> logits);

private:
  // The block's two halves. The attention half writes mid = in + o_proj(attention(rmsnorm(in))) (the
  // attention gated when model.attention_gate), or, with mid empty, stops after the (gated) attention (the recomputation of Recompute::Attention keeps mid). The MLP
  // half writes out = mid + down_proj(swiglu(rmsnorm(mid))), or, with out empty, stops after swiglu. Each
  // residual add is its projection's epilogue (Backend::matmul_forward_residual).
  void attention_half(int64_t l, const BlockActivations& x, Buffer in, Buffer mid, const AttentionShape& s);
  void mlp_half(int64_t l, const BlockActivations& x, Buffer mid, Buffer out, size_t N);
  void recompute_block(Activations& a, int64_t l, const AttentionShape& s);  // what a.recompute left out
  void quantize_input(Buffer x, size_t N, size_t width);  // set_activation_quant's, when set
  std::vector<double> init_values(size_t i, uint64_t seed) const;  // tensor specs_[i]'s init, host fp64
  ModelTensors views(Buffer flat) const;

  ModelConfig cfg_;
  Backend& be_;
  std::vector<ParamSpec> specs_;
  std::vector<GradBucket> buckets_;  // of grads_, in the order backward() completes them
  Buffer params_, grads_;
  ModelTensors w_, g_;  // views into params_ and grads_
  ActQuantArgs act_quant_;
  ModelDims d_;
};

Normaliser normaliser_from_name(const std::string& name);

}  // namespace sp
