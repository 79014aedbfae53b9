// Inference with a key/value cache: the forward pass of Model, for one sequence, a chunk of new tokens at a
// time, each chunk attending over the keys and values cached for every earlier position.
//
//   prefill:  append(prompt)            positions 0..n-1, logits of the last one
//   decode:   append({token})           one position, attends over the n cached ones
//   scoring:  truncate(len(context)); append(continuation, logits of every new position)
//
// Each chunk runs Model::block_forward, the block of the training forward, with a query offset: RoPE and
// SSMax start at the chunk's first position and the attention's queries are the chunk's rows over every
// cached key (backend/op_args.h). Tests compare the logits with Model::forward over the whole sequence at
// every step, for every normaliser, SSMax and GQA. Keys are cached after RoPE, so a cached key never needs
// to be rotated again.
//
// The cache holds at most `capacity` positions; callers keep within the context the model was trained at
// (RoPE and SSMax saw positions below training.seq_len only). Memory (decoder_specs in model/activations.h):
// the cache, 2 L capacity Hkv D values, and the scratch of one chunk; nothing is kept for a backward pass.
#pragma once

#include "backend/op_args.h"
#include "model/model.h"

#include <cstdint>
#include <span>
#include <vector>

namespace sp {

// Rows per pass of the blocks: the chunk's scratch, and its (chunk, V) fp32 logits, stay small.
constexpr int64_t kDecodeChunk = 256;

class Decoder {
public:
  // A cache for `capacity` positions; appends run in chunks of at most `max_chunk` tokens.
  Decoder(Model& model, int64_t capacity, int64_t max_chunk = kDecodeChunk);
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  Model& model() { return model_; }
  int64_t capacity() const { return capacity_; }
  int64_t length() const { return len_; }  // positions in the cache
  int64_t vocab_size() const { return d_.V; }

  void reset() { len_ = 0; }
  // Forgets every position >= n (n <= length()): the next append continues from position n.
  void truncate(int64_t n);

  // Runs `tokens` at positions length() .. length() + n - 1 and caches their keys and values. `logits`
  // receives the logits of the last logits.size() / V new positions, (k, V) row-major (k <= n; empty: none).
  // Token ids must be in [0, V) and the cache must have room (callers check and report bad input).
  void append(std::span<const int32_t> tokens, std::span<float> logits = {});

  // As append, and adds the cross-entropy of `targets` (n, < 0 = ignored) to the decoder's loss
  // accumulator: target i is the token the model should predict after new position i. The fused LM head
  // computes it without host logits. reset() and truncate() leave the accumulator alone.
  void append_scored(std::span<const int32_t> tokens, std::span<const int32_t> targets);
  // The loss added since the last take_loss(), read once after a loop of append_scored(); a sync point.
  LossSum take_loss() { return sp::take_loss(be_, b_.loss); }

private:
  // One chunk through the blocks; leaves the final-norm output of its rows in b_.final_norm.
  void run_chunk(std::span<const int32_t> tokens);

  Model& model_;
  Backend& be_;
  ModelDims d_;
  int64_t capacity_, chunk_, len_ = 0;
  DecoderBuffers b_;  // from decoder_specs(config, capacity_, chunk_) (model/activations.h)
};

}  // namespace sp
