#include "model/params.h"

#include "core/check.h"

namespace sp {

std::vector<ParamSpec> param_specs(const ModelConfig& m) {
  SP_ASSERT(m.num_kv_heads && m.intermediate_size, "param_specs needs a resolved config");
  const int64_t C = m.hidden_size, V = m.vocab_size, H = m.num_heads, D = C / H;
  const int64_t Hkv = *m.num_kv_heads, F = *m.intermediate_size;
  std::vector<ParamSpec> specs;
  auto add = [&](std::string name, std::vector<int64_t> shape, ParamRole role) {
    specs.push_back(ParamSpec{std::move(name), std::move(shape), role});
  };
  add("model.embed_tokens.weight", {V, C}, ParamRole::Embedding);
  for (int64_t l = 0; l < m.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {C}, ParamRole::Norm);
    add(p + "self_attn.q_proj.weight", {H * D, C}, ParamRole::Matmul);
    add(p + "self_attn.k_proj.weight", {Hkv * D, C}, ParamRole::Matmul);
    add(p + "self_attn.v_proj.weight", {Hkv * D, C}, ParamRole::Matmul);
    add(p + "self_attn.o_proj.weight", {C, H * D}, ParamRole::Matmul);
    if (m.ssmax) add(p + "self_attn.ssmax_scale", {H}, ParamRole::Scale);
    if (m.attention == "sink") add(p + "self_attn.sinks", {H}, ParamRole::Sink);
    if (m.attention_gate) add(p + "self_attn.gate_proj.weight", {H * D, C}, ParamRole::Matmul);
    add(p + "post_attention_layernorm.weight", {C}, ParamRole::Norm);
    add(p + "mlp.gate_proj.weight", {F, C}, ParamRole::Matmul);
    add(p + "mlp.up_proj.weight", {F, C}, ParamRole::Matmul);
    add(p + "mlp.down_proj.weight", {C, F}, ParamRole::Matmul);
  }
  add("model.norm.weight", {C}, ParamRole::Norm);
  if (!m.tie_word_embeddings) add("lm_head.weight", {V, C}, ParamRole::LmHead);

  size_t offset = 0;
  for (auto& s : specs) {
    s.numel = 1;
    for (int64_t d : s.shape) s.numel *= size_t(d);
    s.offset = offset;
    offset += (s.numel + kParamAlign - 1) / kParamAlign * kParamAlign;
  }
  return specs;
}

size_t flat_size(const std::vector<ParamSpec>& specs) {
  if (specs.empty()) return 0;
  const auto& last = specs.back();
  return (last.offset + last.numel + kParamAlign - 1) / kParamAlign * kParamAlign;
}

std::vector<GradBucket> grad_buckets(const std::vector<ParamSpec>& specs, size_t P) {
  SP_ASSERT(P >= flat_size(specs), "grad_buckets: {} elements for a table of {}", P, flat_size(specs));
  // the table's order: the embedding, the blocks, the final norm and LM head; a bucket starts at its first
  // tensor and ends where the next begins
  std::vector<GradBucket> table;
  const std::string layers = "model.layers.";
  for (const ParamSpec& s : specs) {
    std::string name = "head";
    if (s.role == ParamRole::Embedding) name = "embedding";
    else if (s.name.rfind(layers, 0) == 0) name = s.name.substr(0, s.name.find('.', layers.size()));
    if (table.empty() || table.back().name != name) table.push_back(GradBucket{name, s.offset, 0});
  }
  for (size_t i = 0; i < table.size(); ++i)
    table[i].numel = (i + 1 < table.size() ? table[i + 1].offset : P) - table[i].offset;
  return {table.rbegin(), table.rend()};  // the backward pass finishes them last first
}

}  // namespace sp
