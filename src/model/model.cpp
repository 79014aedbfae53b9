#include "model/model.h"

#include "core/check.h"
#include "core/rng.h"

#include <algorithm>

namespace sp {

Normaliser normaliser_from_name(const std::string& name) {
  for (Normaliser n : kNormalisers)
    if (name == normaliser_name(n)) return n;
  usage_fail("model.attention = \"{}\": use softmax, softpick, rectified, softmax1 or sink", name);
}

LossSum take_loss(Backend& be, Buffer loss) {
  double host[2];
  be.download(std::span<double>(host), loss);
  be.fill_zero(loss);
  return LossSum{host[0], int64_t(host[1])};
}

Model::Model(const ModelConfig& cfg, Backend& backend, size_t pad_multiple)
    : cfg_(cfg), be_(backend), specs_(param_specs(cfg)), d_(cfg) {
  const size_t P = (flat_size(specs_) + pad_multiple - 1) / pad_multiple * pad_multiple;
  params_ = be_.alloc(P, be_.weight_dtype());
  grads_ = be_.alloc(P, be_.grad_dtype());
  w_ = views(params_);
  g_ = views(grads_);
  buckets_ = sp::grad_buckets(specs_, P);
}

Model::~Model() {
  be_.release(params_);
  be_.release(grads_);
}

Buffer Model::tensor(Buffer flat, const std::string& name) const {
  for (const auto& s : specs_)
    if (s.name == name) return flat.slice(s.offset, s.numel);
  SP_ASSERT(false, "no parameter named {}", name);
  return {};
}

ModelTensors Model::views(Buffer flat) const {
  ModelTensors t;
  t.embed = tensor(flat, "model.embed_tokens.weight");
  t.norm = tensor(flat, "model.norm.weight");
  t.lm_head = cfg_.tie_word_embeddings ? t.embed : tensor(flat, "lm_head.weight");
  for (int64_t l = 0; l < d_.L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerTensors x;
    x.ln1 = tensor(flat, p + "input_layernorm.weight");
    x.q = tensor(flat, p + "self_attn.q_proj.weight");
    x.k = tensor(flat, p + "self_attn.k_proj.weight");
    x.v = tensor(flat, p + "self_attn.v_proj.weight");
    x.o = tensor(flat, p + "self_attn.o_proj.weight");
    if (cfg_.ssmax) x.ssmax = tensor(flat, p + "self_attn.ssmax_scale");
    if (cfg_.attention == "sink") x.sinks = tensor(flat, p + "self_attn.sinks");
    if (cfg_.attention_gate) x.att_gate = tensor(flat, p + "self_attn.gate_proj.weight");
    x.ln2 = tensor(flat, p + "post_attention_layernorm.weight");
    x.gate = tensor(flat, p + "mlp.gate_proj.weight");
    x.up = tensor(flat, p + "mlp.up_proj.weight");
    x.down = tensor(flat, p + "mlp.down_proj.weight");
    t.layers.push_back(x);
  }
  return t;
}

std::vector<double> Model::init_values(size_t i, uint64_t seed) const {
  const ParamSpec& s = specs_[i];
  std::vector<double> host(s.numel, 0.0);
  Rng rng(mix_seed(seed, 0x1A17, i));
  switch (s.role) {
    case ParamRole::Embedding:
    case ParamRole::Matmul:
    case ParamRole::LmHead:
    case ParamRole::Sink:  // as Hugging Face's gpt-oss initialises its sinks
      for (auto& x : host) x = rng.normal() * cfg_.initializer_range;
      break;
    case ParamRole::Norm: host.assign(s.numel, 1.0); break;
    case ParamRole::Scale: host.assign(s.numel, cfg_.ssmax_init); break;
  }
  return host;
}

std::vector<float> Model::initial_weights(uint64_t seed) const {
  std::vector<float> flat(params_.numel, 0.0f);
  for (size_t i = 0; i < specs_.size(); ++i) {
    const std::vector<double> host = init_values(i, seed);
    std::copy(host.begin(), host.end(), flat.begin() + ptrdiff_t(specs_[i].offset));  // rounds to fp32
  }
  return flat;
}

void Model::init_weights(uint64_t seed) {
  for (size_t i = 0; i < specs_.size(); ++i)
    be_.upload(params_.slice(specs_[i].offset, specs_[i].numel), std::span<const double>(init_values(i, seed)));
}

void Model::zero_grads() { be_.fill_zero(grads_); }

AttentionShape Model::attention_shape(int64_t B, int64_t T) const {
  return AttentionShape{B, T, d_.H, d_.Hkv, d_.D, normaliser_from_name(cfg_.attention), cfg_.softpick_eps};
}

Activations Model::make_activations(int64_t B, int64_t T, Recompute r) {
  Activations a;
  allocate_activations(be_, activation_specs(cfg_, B, T, r, &a));
  return a;
}

void Model::free_activations(Activations& a) {
  if (a.B > 0) release_activations(be_, activation_specs(cfg_, a.B, a.T, a.recompute, &a));
  a = Activations{};
}

void Model::forward(Activations& a, std::span<const int32_t> tokens, int64_t B, int64_t T) {
  SP_ASSERT(B >= 1 && T >= 1 && B <= a.B && T <= a.T, "forward ({}, {}) on activations for ({}, {})", B, T, a.B, a.T);
  SP_ASSERT(tokens.size() == size_t(B * T), "forward: {} tokens for ({}, {})", tokens.size(), B, T);
  a.cur_B = B;
  a.cur_T = T;
  const size_t N = size_t(B * T), C = size_t(d_.C);
  const AttentionShape shape = attention_shape(B, T);
  be_.upload(a.tokens, tokens);
  be_.embedding_forward(a.resid[0], a.tokens, w_.embed, N, C);
  for (int64_t l = 0; l < d_.L; ++l)
    block_forward(l, a.layers[size_t(l)], a.resid[size_t(l)], a.resid[size_t(l) + 1], shape);
  be_.rmsnorm_forward(a.final_norm, a.final_rstd, a.resid[size_t(d_.L)], w_.norm, N, C, cfg_.norm_eps);
}

void Model::block_forward(int64_t l, const BlockActivations& x, Buffer in, Buffer out, const AttentionShape& s) {
  SP_ASSERT(l >= 0 && l < d_.L && (s.q_offset == 0 || s.B == 1), "block {} on B={} with query offset {}", l, s.B,
            s.q_offset);
  const size_t N = size_t(s.B * s.Tq());
  attention_half(l, x, in, x.mid, s);
  mlp_half(l, x, x.mid, out, N);
}

void Model::attention_half(int64_t l, const BlockActivations& x, Buffer in, Buffer mid, const AttentionShape& s) {
  const LayerTensors& w = w_.layers[size_t(l)];
  const size_t Tq = size_t(s.Tq()), N = size_t(s.B) * Tq, pos0 = size_t(s.q_offset);
  const size_t C = size_t(d_.C), HD = size_t(d_.H * d_.D), KD = size_t(d_.Hkv * d_.D);
  const size_t B = size_t(s.B), H = size_t(d_.H), Hkv = size_t(d_.Hkv), D = size_t(d_.D);
  const double theta = cfg_.rope_theta;
  const Buffer k_new = x.k.slice(pos0 * KD, N * KD);  // (B, Tq, Hkv, D): the keys and values of these rows
  const Buffer v_new = x.v.slice(pos0 * KD, N * KD);
  in = in.slice(0, N * C);
  be_.rmsnorm_forward(x.ln1, x.rstd1, in, w.ln1, N, C, cfg_.norm_eps);
  quantize_input(x.ln1, N, C);
  be_.matmul_forward(x.q, x.ln1, w.q, N, C, HD);
  be_.matmul_forward(k_new, x.ln1, w.k, N, C, KD);
  be_.matmul_forward(v_new, x.ln1, w.v, N, C, KD);
  if (w.att_gate) be_.matmul_forward(x.att_gate, x.ln1, w.att_gate, N, C, HD);
  be_.rope_forward(x.q, B, Tq, H, D, theta, pos0);
  be_.rope_forward(k_new, B, Tq, Hkv, D, theta, pos0);
  Buffer q_att = x.q;
  if (cfg_.ssmax) {
    be_.ssmax_forward(x.q_scaled, x.q, w.ssmax, B, Tq, H, D, pos0);
    q_att = x.q_scaled;
  }
  be_.attention_forward(x.att, x.lse, q_att, x.k, x.v, w.sinks, s);
  if (w.att_gate) be_.glu_forward(x.att_out, x.att_gate, x.att, N * HD, Glu::Sigmoid);  // att * sigmoid(gate)
  if (!mid) return;
  const Buffer att_out = w.att_gate ? x.att_out : x.att;
  quantize_input(att_out, N, HD);
  be_.matmul_forward_residual(mid.slice(0, N * C), att_out, w.o, in, N, HD, C);  // mid = in + att_out w_o^T
}

void Model::mlp_half(int64_t l, const BlockActivations& x, Buffer mid, Buffer out, size_t N) {
  const LayerTensors& w = w_.layers[size_t(l)];
  const size_t C = size_t(d_.C), F = size_t(d_.F);
  mid = mid.slice(0, N * C);
  be_.rmsnorm_forward(x.ln2, x.rstd2, mid, w.ln2, N, C, cfg_.norm_eps);
  quantize_input(x.ln2, N, C);
  be_.matmul_forward(x.gate, x.ln2, w.gate, N, C, F);
  be_.matmul_forward(x.up, x.ln2, w.up, N, C, F);
  be_.glu_forward(x.act, x.gate, x.up, N * F, Glu::Swish);
  if (!out) return;
  quantize_input(x.act, N, F);
  be_.matmul_forward_residual(out.slice(0, N * C), x.act, w.down, mid, N, F, C);  // out = mid + act w_down^T
}

void Model::quantize_input(Buffer x, size_t N, size_t width) {
  if (act_quant_.kind != ActQuant::None) be_.act_quant(x, N, width, act_quant_);
}

void Model::recompute_block(Activations& a, int64_t l, const AttentionShape& s) {
  const BlockActivations& x = a.layers[size_t(l)];
  switch (a.recompute) {
    case Recompute::None: return;
    case Recompute::Attention: attention_half(l, x, a.resid[size_t(l)], Buffer{}, s); return;
    case Recompute::Full:
      attention_half(l, x, a.resid[size_t(l)], x.mid, s);
      mlp_half(l, x, x.mid, Buffer{}, size_t(s.B * s.T));
      return;
  }
}

void Model::loss(Activations& a, std::span<const int32_t> targets, bool with_grad, double grad_scale) {
  const size_t N = size_t(a.cur_B * a.cur_T);
  SP_ASSERT(targets.size() == N, "loss: {} targets for {} positions", targets.size(), N);
  be_.upload(a.targets, targets);
  be_.lm_head_loss(a.loss, a.final_norm, w_.lm_head, a.targets, N, size_t(d_.C), size_t(d_.V),
                   with_grad ? a.d_final : Buffer{}, with_grad ? g_.lm_head : Buffer{}, grad_scale);
}

void Model::backward(Activations& a, const std::function<void(size_t)>& bucket_ready) {
  SP_ASSERT(act_quant_.kind == ActQuant::None, "backward through fake-quantized activations (evaluation only)");
  const int64_t B = a.cur_B, T = a.cur_T;
  const size_t N = size_t(B * T), C = size_t(d_.C), HD = size_t(d_.H * d_.D), KD = size_t(d_.Hkv * d_.D), F = size_t(d_.F);
  const double theta = cfg_.rope_theta;
  const AttentionShape shape = attention_shape(B, T);

  // d_resid carries dL/d(residual stream) down through the blocks
  be_.fill_zero(a.d_resid);
  be_.rmsnorm_backward(a.d_resid, g_.norm, a.d_final, a.resid[size_t(d_.L)], w_.norm, a.final_rstd, N, C);
  size_t bucket = 0;  // grad_buckets(): the head, the blocks from the last, the embedding
  auto done = [&] {
    if (bucket_ready) bucket_ready(bucket);
    ++bucket;
  };
  done();
  for (int64_t l = d_.L - 1; l >= 0; --l) {
    const LayerTensors& w = w_.layers[size_t(l)];
    const LayerTensors& g = g_.layers[size_t(l)];
    const BlockActivations& x = a.layers[size_t(l)];
    recompute_block(a, l, shape);
    // MLP sub-block; the skip path leaves d_resid as it is, the norm path adds to it
    be_.matmul_backward(a.d_act, g.down, a.d_resid, x.act, w.down, N, F, C, false);
    be_.glu_backward(a.d_gate, a.d_up, a.d_act, x.gate, x.up, N * F, Glu::Swish);
    be_.matmul_backward(a.d_ln, g.gate, a.d_gate, x.ln2, w.gate, N, C, F, false);
    be_.matmul_backward(a.d_ln, g.up, a.d_up, x.ln2, w.up, N, C, F, true);
    be_.rmsnorm_backward(a.d_resid, g.ln2, a.d_ln, x.mid, w.ln2, x.rstd2, N, C);
    // attention sub-block
    if (w.att_gate) {  // through o_proj to the gated output, then to the attention and the gate's logits
      be_.matmul_backward(a.d_att_out, g.o, a.d_resid, x.att_out, w.o, N, HD, C, false);
      be_.glu_backward(a.d_att_gate, a.d_att, a.d_att_out, x.att_gate, x.att, N * HD, Glu::Sigmoid);
    } else {
      be_.matmul_backward(a.d_att, g.o, a.d_resid, x.att, w.o, N, HD, C, false);
    }
    const Buffer q_att = cfg_.ssmax ? x.q_scaled : x.q;
    const Buffer d_q_att = cfg_.ssmax ? a.d_q_scaled : a.d_q;
    be_.attention_backward(d_q_att, a.d_k, a.d_v, q_att, x.k, x.v, x.att, a.d_att, x.lse, shape);
    if (w.sinks) be_.attention_sink_backward(g.sinks, x.att, a.d_att, x.lse, w.sinks, shape);
    if (cfg_.ssmax)
      be_.ssmax_backward(a.d_q, g.ssmax, a.d_q_scaled, x.q, w.ssmax, size_t(B), size_t(T), size_t(d_.H), size_t(d_.D));
    be_.rope_backward(a.d_q, size_t(B), size_t(T), size_t(d_.H), size_t(d_.D), theta);
    be_.rope_backward(a.d_k, size_t(B), size_t(T), size_t(d_.Hkv), size_t(d_.D), theta);
    be_.matmul_backward(a.d_ln, g.q, a.d_q, x.ln1, w.q, N, C, HD, false);
    be_.matmul_backward(a.d_ln, g.k, a.d_k, x.ln1, w.k, N, C, KD, true);
    be_.matmul_backward(a.d_ln, g.v, a.d_v, x.ln1, w.v, N, C, KD, true);
    if (w.att_gate) be_.matmul_backward(a.d_ln, g.att_gate, a.d_att_gate, x.ln1, w.att_gate, N, C, HD, true);
    be_.rmsnorm_backward(a.d_resid, g.ln1, a.d_ln, a.resid[size_t(l)], w.ln1, x.rstd1, N, C);
    done();
  }
  be_.embedding_backward(g_.embed, a.d_resid, a.tokens, N, C);
  done();
  SP_ASSERT(bucket == buckets_.size(), "backward finished {} gradient buckets of {}", bucket, buckets_.size());
}

void Model::last_logits(Activations& a, std::span<float> logits) {
  SP_ASSERT(logits.size() == size_t(d_.V), "last_logits: {} slots for {} logits", logits.size(), d_.V);
  const Buffer row = a.final_norm.slice(size_t(a.cur_T - 1) * size_t(d_.C), size_t(d_.C));
  be_.lm_head_logits(a.logits, row, w_.lm_head, size_t(d_.C), size_t(d_.V));
  be_.download(logits, a.logits);
}

}  // namespace sp
