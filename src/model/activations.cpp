#include "model/activations.h"

#include "core/check.h"

namespace sp {

size_t ActivationSpec::numel() const {
  size_t n = 1;
  for (int64_t d : shape) n *= size_t(d);
  return n;
}

Recompute recompute_from_name(const std::string& name) {
  if (name == "none") return Recompute::None;
  if (name == "attention") return Recompute::Attention;
  if (name == "full") return Recompute::Full;
  usage_fail("training.activation_checkpointing = \"{}\": use none, attention or full", name);
}

const char* recompute_name(Recompute r) {
  switch (r) {
    case Recompute::None: return "none";
    case Recompute::Attention: return "attention";
    case Recompute::Full: return "full";
  }
  return "none";
}

namespace {

// Collects specs; with counting only, slots stay null.
class SpecList {
public:
  explicit SpecList(bool bind) : bind_(bind) {}
  void add(std::string name, std::vector<int64_t> shape, ActKind kind, Buffer& slot, std::vector<Buffer*> shared = {}) {
    specs_.push_back(ActivationSpec{std::move(name), std::move(shape), kind, bind_ ? &slot : nullptr,
                                    bind_ ? std::move(shared) : std::vector<Buffer*>{}});
  }
  std::vector<ActivationSpec> take() { return std::move(specs_); }

private:
  bool bind_;
  std::vector<ActivationSpec> specs_;
};

// The fields of BlockActivations: their part of the block (what Recompute::Attention recomputes is the
// attention part), their shape and kind.
enum class Part { Attention, Mlp };
enum class Rows { Model, Heads, HeadRows, KeyValue, Ffn, Stat };  // (B,Tq,C) (B,Tq,H,D) (B,H,Tq) (B,T,Hkv,D) (B,Tq,F) (B,Tq)
struct BlockField {
  const char* name;
  Buffer BlockActivations::*member;
  Part part;
  Rows rows;
};
constexpr BlockField kBlockFields[] = {
    {"ln1", &BlockActivations::ln1, Part::Attention, Rows::Model},
    {"rstd1", &BlockActivations::rstd1, Part::Attention, Rows::Stat},
    {"q", &BlockActivations::q, Part::Attention, Rows::Heads},
    {"q_scaled", &BlockActivations::q_scaled, Part::Attention, Rows::Heads},
    {"k", &BlockActivations::k, Part::Attention, Rows::KeyValue},
    {"v", &BlockActivations::v, Part::Attention, Rows::KeyValue},
    {"att", &BlockActivations::att, Part::Attention, Rows::Heads},
    {"lse", &BlockActivations::lse, Part::Attention, Rows::HeadRows},
    {"att_gate", &BlockActivations::att_gate, Part::Attention, Rows::Heads},
    {"att_out", &BlockActivations::att_out, Part::Attention, Rows::Heads},
    {"mid", &BlockActivations::mid, Part::Mlp, Rows::Model},
    {"ln2", &BlockActivations::ln2, Part::Mlp, Rows::Model},
    {"rstd2", &BlockActivations::rstd2, Part::Mlp, Rows::Stat},
    {"gate", &BlockActivations::gate, Part::Mlp, Rows::Ffn},
    {"up", &BlockActivations::up, Part::Mlp, Rows::Ffn},
    {"act", &BlockActivations::act, Part::Mlp, Rows::Ffn},
};

bool listed(const BlockField& f, const ModelConfig& m, bool with_kv) {
  if (f.rows == Rows::KeyValue) return with_kv;
  if (f.member == &BlockActivations::q_scaled) return m.ssmax;
  if (f.member == &BlockActivations::att_gate || f.member == &BlockActivations::att_out) return m.attention_gate;
  return true;
}

std::vector<int64_t> shape_of(const BlockField& f, const ModelConfig& m, int64_t B, int64_t Tq) {
  const int64_t C = m.hidden_size, H = m.num_heads, D = C / H;
  switch (f.rows) {
    case Rows::Model: return {B, Tq, C};
    case Rows::Heads: return {B, Tq, H, D};
    case Rows::HeadRows: return {B, H, Tq};
    case Rows::KeyValue: return {B, Tq, *m.num_kv_heads, D};
    case Rows::Ffn: return {B, Tq, *m.intermediate_size};
    case Rows::Stat: return {B, Tq};
  }
  return {};
}

ActKind kind_of(const BlockField& f) {
  return f.rows == Rows::Stat || f.rows == Rows::HeadRows ? ActKind::Stat : ActKind::Value;
}

bool recomputed(const BlockField& f, Recompute r) {
  return r == Recompute::Full || (r == Recompute::Attention && f.part == Part::Attention);
}

}  // namespace

std::vector<ActivationSpec> activation_specs(const ModelConfig& m, int64_t B, int64_t T, Recompute r, Activations* a) {
  SP_ASSERT(B >= 1 && T >= 1 && m.num_kv_heads && m.intermediate_size, "activation_specs ({}, {})", B, T);
  const int64_t C = m.hidden_size, L = m.num_hidden_layers, H = m.num_heads, D = C / H;
  const int64_t Hkv = *m.num_kv_heads, F = *m.intermediate_size, V = m.vocab_size;
  Activations counting;
  Activations& x = a ? *a : counting;
  x.B = B;
  x.T = T;
  x.recompute = r;
  x.resid.resize(size_t(L + 1));  // kept as they are when listing allocated activations (to free them)
  x.layers.resize(size_t(L));
  SpecList s(a != nullptr);
  s.add("tokens", {B, T}, ActKind::Token, x.tokens);
  s.add("targets", {B, T}, ActKind::Token, x.targets);
  for (int64_t l = 0; l <= L; ++l) s.add("resid." + std::to_string(l), {B, T, C}, ActKind::Value, x.resid[size_t(l)]);
  for (const BlockField& f : kBlockFields) {
    if (!listed(f, m, /*with_kv=*/true)) continue;
    const ActKind kind = kind_of(f);
    if (recomputed(f, r)) {  // one buffer, viewed by every layer
      std::vector<Buffer*> others;
      for (int64_t l = 1; l < L; ++l) others.push_back(&(x.layers[size_t(l)].*f.member));
      s.add(std::string("recomputed.") + f.name, shape_of(f, m, B, T), kind, x.layers[0].*f.member, std::move(others));
    } else {
      for (int64_t l = 0; l < L; ++l)
        s.add("layers." + std::to_string(l) + "." + f.name, shape_of(f, m, B, T), kind, x.layers[size_t(l)].*f.member);
    }
  }
  s.add("final_norm", {B, T, C}, ActKind::Value, x.final_norm);
  s.add("final_rstd", {B, T}, ActKind::Stat, x.final_rstd);
  s.add("d_resid", {B, T, C}, ActKind::Value, x.d_resid);
  s.add("d_ln", {B, T, C}, ActKind::Value, x.d_ln);
  s.add("d_final", {B, T, C}, ActKind::Value, x.d_final);
  s.add("d_q", {B, T, H, D}, ActKind::Value, x.d_q);
  if (m.ssmax) s.add("d_q_scaled", {B, T, H, D}, ActKind::Value, x.d_q_scaled);
  s.add("d_att", {B, T, H, D}, ActKind::Value, x.d_att);
  if (m.attention_gate) {
    s.add("d_att_gate", {B, T, H, D}, ActKind::Value, x.d_att_gate);
    s.add("d_att_out", {B, T, H, D}, ActKind::Value, x.d_att_out);
  }
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
  for (const BlockField& f : kBlockFields)  // one block's scratch; its k and v are the layer's cache
    if (listed(f, m, /*with_kv=*/false))
      s.add(std::string("block.") + f.name, shape_of(f, m, 1, n), kind_of(f), x.block.*f.member);
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
    for (Buffer* view : s.shared) *view = *s.slot;
  }
}

void release_activations(Backend& be, const std::vector<ActivationSpec>& specs) {
  for (const ActivationSpec& s : specs)
    if (s.slot && *s.slot) {
      be.release(*s.slot);
      *s.slot = Buffer{};
      for (Buffer* view : s.shared) *view = Buffer{};
    }
}

}  // namespace sp
