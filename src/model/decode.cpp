#include "model/decode.h"

#include "core/check.h"

#include <algorithm>

namespace sp {

Decoder::Decoder(Model& model, int64_t capacity, int64_t max_chunk)
    : model_(model), be_(model.backend()), d_(model.config()), capacity_(capacity),
      chunk_(std::min(max_chunk, capacity)) {
  SP_ASSERT(capacity >= 1 && max_chunk >= 1, "decoder capacity {} / chunk {}", capacity, max_chunk);
  const ModelConfig& cfg = model.config();
  shape_ = AttentionShape{1, 0, d_.H, d_.Hkv, d_.D, normaliser_from_name(cfg.attention), cfg.softpick_eps};

  const size_t n = size_t(chunk_), C = size_t(d_.C), HD = size_t(d_.H * d_.D), F = size_t(d_.F);
  auto buf = [&](size_t numel) { return be_.alloc(numel, be_.activation_dtype()); };
  for (int64_t l = 0; l < d_.L; ++l) {
    k_.push_back(buf(size_t(capacity_) * size_t(d_.Hkv * d_.D)));
    v_.push_back(buf(size_t(capacity_) * size_t(d_.Hkv * d_.D)));
  }
  tokens_ = be_.alloc(n, DType::I32);
  targets_ = be_.alloc(n, DType::I32);
  x_ = buf(n * C);
  ln_ = buf(n * C);
  rstd_ = be_.alloc(n, be_.stat_dtype());
  mid_ = buf(n * C);
  q_ = buf(n * HD);
  if (cfg.ssmax) q_scaled_ = buf(n * HD);
  att_ = buf(n * HD);
  gate_ = buf(n * F);
  up_ = buf(n * F);
  act_ = buf(n * F);
  final_ = buf(n * C);
  final_rstd_ = be_.alloc(n, be_.stat_dtype());
  logits_ = be_.alloc(n * size_t(d_.V), be_.stat_dtype());  // fp32 where activations are bf16
  loss_ = be_.alloc(2, kAccumDType);
}

Decoder::~Decoder() {
  for (Buffer b : {tokens_, targets_, x_, ln_, rstd_, mid_, q_, q_scaled_, att_, gate_, up_, act_, final_,
                   final_rstd_, logits_, loss_})
    if (b) be_.release(b);
  for (Buffer b : k_) be_.release(b);
  for (Buffer b : v_) be_.release(b);
}

void Decoder::truncate(int64_t n) {
  SP_ASSERT(n >= 0 && n <= len_, "truncate to {} of a cache holding {}", n, len_);
  len_ = n;
}

// The blocks of Model::forward on rows at positions len_ .. len_ + n - 1. Keys and values go straight
// into their cache rows; the query side and the MLP use the chunk scratch.
void Decoder::run_chunk(std::span<const int32_t> tokens) {
  const size_t n = tokens.size(), pos = size_t(len_);
  SP_ASSERT(n >= 1 && int64_t(n) <= chunk_ && len_ + int64_t(n) <= capacity_,
            "chunk of {} at position {} (chunk size {}, capacity {})", n, pos, chunk_, capacity_);
  const ModelConfig& cfg = model_.config();
  const ModelTensors& w = model_.weights();
  const size_t C = size_t(d_.C), HD = size_t(d_.H * d_.D), KD = size_t(d_.Hkv * d_.D), F = size_t(d_.F);
  const size_t H = size_t(d_.H), Hkv = size_t(d_.Hkv), D = size_t(d_.D);
  const double eps = cfg.norm_eps, theta = cfg.rope_theta;
  AttentionShape shape = shape_;
  shape.T = int64_t(pos + n);  // every cached key plus the new ones

  be_.upload(tokens_, tokens);
  be_.embedding_forward(x_, tokens_, w.embed, n, C);
  for (int64_t l = 0; l < d_.L; ++l) {
    const LayerTensors& lw = w.layers[size_t(l)];
    const Buffer k_new = k_[size_t(l)].slice(pos * KD, n * KD);  // (n, Hkv, D) cache rows of the chunk
    const Buffer v_new = v_[size_t(l)].slice(pos * KD, n * KD);
    // attention sub-block: mid = x + o_proj(attention(rmsnorm(x)))
    be_.rmsnorm_forward(ln_, rstd_, x_, lw.ln1, n, C, eps);
    be_.matmul_forward(q_, ln_, lw.q, n, C, HD);
    be_.matmul_forward(k_new, ln_, lw.k, n, C, KD);
    be_.matmul_forward(v_new, ln_, lw.v, n, C, KD);
    be_.rope_forward_at(q_, n, H, D, theta, pos);
    be_.rope_forward_at(k_new, n, Hkv, D, theta, pos);
    Buffer q_att = q_;
    if (cfg.ssmax) {
      be_.ssmax_forward_at(q_scaled_, q_, lw.ssmax, n, H, D, pos);
      q_att = q_scaled_;
    }
    be_.attention_cached(att_, q_att, k_[size_t(l)], v_[size_t(l)], shape, n);
    be_.matmul_forward(mid_, att_, lw.o, n, HD, C);
    be_.accumulate(mid_.slice(0, n * C), x_.slice(0, n * C));
    // MLP sub-block: x = mid + down_proj(silu(gate_proj(h)) * up_proj(h)), h = rmsnorm(mid)
    be_.rmsnorm_forward(ln_, rstd_, mid_, lw.ln2, n, C, eps);
    be_.matmul_forward(gate_, ln_, lw.gate, n, C, F);
    be_.matmul_forward(up_, ln_, lw.up, n, C, F);
    be_.swiglu_forward(act_, gate_, up_, n * F);
    be_.matmul_forward(x_, act_, lw.down, n, F, C);
    be_.accumulate(x_.slice(0, n * C), mid_.slice(0, n * C));
  }
  be_.rmsnorm_forward(final_, final_rstd_, x_, w.norm, n, C, eps);
  len_ += int64_t(n);
}

void Decoder::append(std::span<const int32_t> tokens, std::span<float> logits) {
  const size_t n = tokens.size(), V = size_t(d_.V);
  SP_ASSERT(logits.size() % V == 0 && logits.size() / V <= n, "append: {} logit slots for {} tokens of V={}",
            logits.size(), n, V);
  const size_t want_from = n - logits.size() / V;  // first new row whose logits are wanted
  for (size_t c0 = 0; c0 < n; c0 += size_t(chunk_)) {
    const size_t c1 = std::min(n, c0 + size_t(chunk_));
    run_chunk(tokens.subspan(c0, c1 - c0));
    const size_t r0 = std::max(c0, want_from);  // rows [r0, c1) of this chunk have wanted logits
    if (r0 >= c1) continue;
    const size_t rows = c1 - r0, C = size_t(d_.C);
    const Buffer x = final_.slice((r0 - c0) * C, rows * C);
    be_.matmul_forward(logits_, x, model_.weights().lm_head, rows, C, V);  // (rows, V) = x lm_head^T
    be_.download(logits.subspan((r0 - want_from) * V, rows * V), logits_.slice(0, rows * V));
  }
}

void Decoder::append_scored(std::span<const int32_t> tokens, std::span<const int32_t> targets) {
  SP_ASSERT(targets.size() == tokens.size(), "append_scored: {} targets for {} tokens", targets.size(),
            tokens.size());
  const size_t n = tokens.size();
  for (size_t c0 = 0; c0 < n; c0 += size_t(chunk_)) {
    const size_t c1 = std::min(n, c0 + size_t(chunk_));
    run_chunk(tokens.subspan(c0, c1 - c0));
    be_.upload(targets_, targets.subspan(c0, c1 - c0));
    be_.lm_head_loss(loss_, final_, model_.weights().lm_head, targets_, c1 - c0, size_t(d_.C), size_t(d_.V),
                     Buffer{}, Buffer{}, 0.0);
  }
}

}  // namespace sp
