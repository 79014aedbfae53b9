#include "model/activations.h"

#include "core/check.h"

namespace sp {

size_t ActivationSpec::numel() const {
  size_t n = 1;
  for (int64_t d : shape) n *= size_t(d);
  return n;
}

namespace {

// Collects specs; with counting only, slots stay null.
class SpecList {
public:
  explicit SpecList(bool bind) : bind_(bind) {}
  void add(std::string name, std::vector<int64_t> shape, ActKind kind, Buffer& slot) {
    specs_.push_back(ActivationSpec{std::move(name), std::move(shape), kind, bind_ ? &slot : nullptr});
  }
  std::vector<ActivationSpec> take() { return std::move(specs_); }

private:
  bool bind_;
  std::vector<ActivationSpec> specs_;
};

// One block's buffers for B rows of Tq, without k and v (training lists them, the decoder caches them).
void add_block(SpecList& s, const std::string& p, const ModelConfig& m, int64_t B, int64_t Tq, BlockActivations& x) {
  const int64_t C = m.hidden_size, H = m.num_heads, D = C / H, F = *m.intermediate_size;
  s.add(p + "ln1", {B, Tq, C}, ActKind::Value, x.ln1);
  s.add(p + "rstd1", {B, Tq}, ActKind::Stat, x.rstd1);
  s.add(p + "q", {B, Tq, H, D}, ActKind::Value, x.q);
  if (m.ssmax) s.add(p + "q_scaled", {B, Tq, H, D}, ActKind::Value, x.q_scaled);
  s.add(p + "att", {B, Tq, H, D}, ActKind::Value, x.att);
  s.add(p + "lse", {B, H, Tq}, ActKind::Stat, x.lse);
  s.add(p + "mid", {B, Tq, C}, ActKind::Value, x.mid);
  s.add(p + "ln2", {B, Tq, C}, ActKind::Value, x.ln2);
  s.add(p + "rstd2", {B, Tq}, ActKind::Stat, x.rstd2);
  s.add(p + "gate", {B, Tq, F}, ActKind::Value, x.gate);
  s.add(p + "up", {B, Tq, F}, ActKind::Value, x.up);
  s.add(p + "act", {B, Tq, F}, ActKind::Value, x.act);
}

}  // namespace

std::vector<ActivationSpec> activation_specs(const ModelConfig& m, int64_t B, int64_t T, Activations* a) {
  SP_ASSERT(B >= 1 && T >= 1 && m.num_kv_heads && m.intermediate_size, "activation_specs ({}, {})", B, T);
  const int64_t C = m.hidden_size, L = m.num_hidden_layers, H = m.num_heads, D = C / H;
  const int64_t Hkv = *m.num_kv_heads, F = *m.intermediate_size, V = m.vocab_size;
  Activations counting;
  Activations& x = a ? *a : counting;
  x.B = B;
  x.T = T;
  x.resid.resize(size_t(L + 1));  // kept as they are when listing allocated activations (to free them)
  x.layers.resize(size_t(L));
  SpecList s(a != nullptr);
  s.add("tokens", {B, T}, ActKind::Token, x.tokens);
  s.add("targets", {B, T}, ActKind::Token, x.targets);
  for (int64_t l = 0; l <= L; ++l) s.add("resid." + std::to_string(l), {B, T, C}, ActKind::Value, x.resid[size_t(l)]);
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    BlockActivations& b = x.layers[size_t(l)];
    add_block(s, p, m, B, T, b);
    s.add(p + "k", {B, T, Hkv, D}, ActKind::Value, b.k);
    s.add(p + "v", {B, T, Hkv, D}, ActKind::Value, b.v);
  }
  s.add("final_norm", {B, T, C}, ActKind::Value, x.final_norm);
  s.add("final_rstd", {B, T}, ActKind::Stat, x.final_rstd);
  s.add("d_resid", {B, T, C}, ActKind::Value, x.d_resid);
  s.add("d_ln", {B, T, C}, ActKind::Value, x.d_ln);
  s.add("d_final", {B, T, C}, ActKind::Value, x.d_final);
  s.add("d_q", {B, T, H, D}, ActKind::Value, x.d_q);
  if (m.ssmax) s.add("d_q_scaled", {B, T, H, D}, ActKind::Value, x.d_q_scaled);
  s.add("d_att", {B, T, H, D}, ActKind::Value, x.d_att);
  s.add("d_k", {B, T, Hkv, D}, ActKind::Value, x.d_k);
  s.add("d_v", {B, T, Hkv, D}, ActKind::Value, x.d_v);
  s.add("d_gate", {B, T, F}, ActKind::Value, x.d_gate);
  s.add("d_up", {B, T, F}, ActKind::Value, x.d_up);
  s.add("d_act", {B, T, F}, ActKind::Value, x.d_act);
  s.add("logits", {V}, ActKind::Stat, x.logits);  // fp32 where activations are bf16: sampling reads them
  s.add("loss", {2}, ActKind::Accum, x.loss);
  return s.take();
}

std::vector<ActivationSpec> decoder_specs(const ModelConfig& m, int64_t T, int64_t n, DecoderBuffers* d) {
  SP_ASSERT(n >= 1 && n <= T && m.num_kv_heads && m.intermediate_size, "decoder_specs (capacity {}, chunk {})", T, n);
  const int64_t C = m.hidden_size, L = m.num_hidden_layers, D = C / m.num_heads, Hkv = *m.num_kv_heads;
  DecoderBuffers counting;
  DecoderBuffers& x = d ? *d : counting;
  x.k.resize(size_t(L));
  x.v.resize(size_t(L));
  SpecList s(d != nullptr);
  for (int64_t l = 0; l < L; ++l) {
    s.add("cache." + std::to_string(l) + ".k", {T, Hkv, D}, ActKind::Value, x.k[size_t(l)]);
    s.add("cache." + std::to_string(l) + ".v", {T, Hkv, D}, ActKind::Value, x.v[size_t(l)]);
  }
  s.add("tokens", {n}, ActKind::Token, x.tokens);
  s.add("targets", {n}, ActKind::Token, x.targets);
  s.add("x", {n, C}, ActKind::Value, x.x);
  add_block(s, "block.", m, 1, n, x.block);
  s.add("final_norm", {n, C}, ActKind::Value, x.final_norm);
  s.add("final_rstd", {n}, ActKind::Stat, x.final_rstd);
  s.add("logits", {n, m.vocab_size}, ActKind::Stat, x.logits);  // fp32 where activations are bf16
  s.add("loss", {2}, ActKind::Accum, x.loss);
  return s.take();
}

DType activation_dtype(ActKind kind, const Backend& be) {
  switch (kind) {
    case ActKind::Value: return be.activation_dtype();
    case ActKind::Stat: return be.stat_dtype();
    case ActKind::Token: return DType::I32;
    case ActKind::Accum: return kAccumDType;
  }
  return be.activation_dtype();
}

void allocate_activations(Backend& be, const std::vector<ActivationSpec>& specs) {
  for (const ActivationSpec& s : specs) {
    SP_ASSERT(s.slot, "activation {} was listed for counting, not allocation", s.name);
    *s.slot = be.alloc(s.numel(), activation_dtype(s.kind, be));
  }
}

void release_activations(Backend& be, const std::vector<ActivationSpec>& specs) {
  for (const ActivationSpec& s : specs)
    if (s.slot && *s.slot) {
      be.release(*s.slot);
      *s.slot = Buffer{};
    }
}

}  // namespace sp
