#include "model/decode.h"

#include "core/check.h"

#include <algorithm>

namespace sp {

Decoder::Decoder(Model& model, int64_t capacity, int64_t max_chunk)
    : model_(model), be_(model.backend()), d_(model.config()), capacity_(capacity),
      chunk_(std::min(max_chunk, capacity)) {
  SP_ASSERT(capacity >= 1 && max_chunk >= 1, "decoder capacity {} / chunk {}", capacity, max_chunk);
  allocate_activations(be_, decoder_specs(model.config(), capacity_, chunk_, &b_));
}

Decoder::~Decoder() { release_activations(be_, decoder_specs(model_.config(), capacity_, chunk_, &b_)); }

void Decoder::truncate(int64_t n) {
  SP_ASSERT(n >= 0 && n <= len_, "truncate to {} of a cache holding {}", n, len_);
  len_ = n;
}

// Model's blocks on rows at positions len_ .. len_ + n - 1: the attention's query offset is len_, its keys
// and values are the cache's first len_ + n rows, and the block writes the chunk's own rows into it.
void Decoder::run_chunk(std::span<const int32_t> tokens) {
  const size_t n = tokens.size(), C = size_t(d_.C);
  SP_ASSERT(n >= 1 && int64_t(n) <= chunk_ && len_ + int64_t(n) <= capacity_,
            "chunk of {} at position {} (chunk size {}, capacity {})", n, len_, chunk_, capacity_);
  AttentionShape shape = model_.attention_shape(1, len_ + int64_t(n));
  shape.q_offset = len_;

  be_.upload(b_.tokens, tokens);
  be_.embedding_forward(b_.x, b_.tokens, model_.weights().embed, n, C);
  BlockActivations block = b_.block;
  for (int64_t l = 0; l < d_.L; ++l) {
    block.k = b_.k[size_t(l)];
    block.v = b_.v[size_t(l)];
    model_.block_forward(l, block, b_.x, b_.x, shape);
  }
  be_.rmsnorm_forward(b_.final_norm, b_.final_rstd, b_.x, model_.weights().norm, n, C, model_.config().norm_eps);
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
    const Buffer x = b_.final_norm.slice((r0 - c0) * C, rows * C);
    be_.matmul_forward(b_.logits, x, model_.weights().lm_head, rows, C, V);  // (rows, V) = x lm_head^T
    be_.download(logits.subspan((r0 - want_from) * V, rows * V), b_.logits.slice(0, rows * V));
  }
}

void Decoder::append_scored(std::span<const int32_t> tokens, std::span<const int32_t> targets) {
  SP_ASSERT(targets.size() == tokens.size(), "append_scored: {} targets for {} tokens", targets.size(),
            tokens.size());
  const size_t n = tokens.size();
  for (size_t c0 = 0; c0 < n; c0 += size_t(chunk_)) {
    const size_t c1 = std::min(n, c0 + size_t(chunk_));
    run_chunk(tokens.subspan(c0, c1 - c0));
    be_.upload(b_.targets, targets.subspan(c0, c1 - c0));
    be_.lm_head_loss(b_.loss, b_.final_norm, model_.weights().lm_head, b_.targets, c1 - c0, size_t(d_.C), size_t(d_.V),
                     Buffer{}, Buffer{}, 0.0);
  }
}

}  // namespace sp
