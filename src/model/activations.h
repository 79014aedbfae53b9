// The activations of the model's passes, and the one table per pass that lists them.
//
// Each pass's buffers are a plain struct (Activations for training and evaluation, DecoderBuffers for the
// key/value-cached decoder), and one function per pass lists every buffer of its struct as a spec (name,
// shape, kind). That list drives allocation and freeing (allocate_activations, release_activations) and
// the memory estimate of `softpick config` (src/dist/memory.cpp), as param_specs() does for the weights.
// A buffer added to a struct is added to its table, and is then allocated, freed and counted.
//
// Dimension letters as in docs/architecture.md; Tq = T in training, the decoder's chunk of new rows.
#pragma once

#include "backend/backend.h"
#include "config/config.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sp {

// What one block computes on its rows, (B, Tq) of them: training keeps one per layer for the backward pass,
// the decoder reuses one as scratch. k and v hold every key of the attention, (B, T, Hkv, D) (the decoder's
// cache); the block writes the rows of its queries.
struct BlockActivations {
  Buffer ln1, rstd1;         // (B, Tq, C), (B, Tq)
  Buffer q, k, v;            // (B, Tq, H, D) after RoPE, (B, T, Hkv, D) after RoPE, (B, T, Hkv, D)
  Buffer q_scaled;           // (B, Tq, H, D) SSMax-scaled q (only with model.ssmax)
  Buffer att, lse;           // (B, Tq, H, D), (B, H, Tq)
  Buffer att_gate, att_out;  // (B, Tq, H, D) each: gate logits h W_g^T, att * sigmoid(att_gate) (attention_gate)
  Buffer mid;                // (B, Tq, C) residual after attention
  Buffer ln2, rstd2;         // (B, Tq, C), (B, Tq)
  Buffer gate, up, act;      // (B, Tq, F) each
};

// What the backward pass recomputes instead of keeping (training.activation_checkpointing):
//   None       every block keeps all of its BlockActivations.
//   Attention  each block keeps its MLP part (mid, ln2, rstd2, gate, up, act); its attention part (ln1,
//              rstd1, q, q_scaled, k, v, att, lse, att_gate, att_out) is one buffer set shared by all layers, recomputed from
//              the block's input before the block's backward: one more QKV projection and attention forward
//              per layer.
//   Full       each block keeps only its input (resid[l]); the whole block is recomputed (but the down
//              projection): about one more forward pass per step.
// The recomputation runs the forward's kernels on the forward's inputs, so gradients are bit-identical to
// None's on every backend (the kernels are deterministic).
enum class Recompute { None, Attention, Full };
Recompute recompute_from_name(const std::string& name);  // "none" | "attention" | "full"
const char* recompute_name(Recompute r);

// Activations of one forward pass, kept for the backward pass, plus the gradient scratch.
// Allocated for at most (B, T); a pass may use a shorter T.
struct Activations {
  int64_t B = 0, T = 0;          // capacity
  Recompute recompute = Recompute::None;
  int64_t cur_B = 0, cur_T = 0;  // shape of the last forward()
  Buffer tokens, targets;        // (B, T) i32
  std::vector<Buffer> resid;     // L + 1 of (B, T, C): input of block l; resid[L] is the last block's output
  std::vector<BlockActivations> layers;
  Buffer final_norm, final_rstd;  // (B, T, C), (B, T)
  // gradient scratch, shared by all layers
  Buffer d_resid, d_ln, d_final;  // (B, T, C)
  Buffer d_q, d_q_scaled, d_att;  // (B, T, H, D); d_q_scaled only with model.ssmax
  Buffer d_att_gate, d_att_out;   // (B, T, H, D), only with model.attention_gate
  Buffer d_k, d_v;                // (B, T, Hkv, D)
  Buffer d_gate, d_up, d_act;     // (B, T, F)
  Buffer logits;                  // (V) the last position's logits (Model::last_logits)
  Buffer loss;                    // (2) kAccumDType: [sum of nats, rows with a target], added to by loss()
};

// The key/value-cached decoder's buffers (model/decode.h), for a capacity of T positions and chunks of n rows.
struct DecoderBuffers {
  std::vector<Buffer> k, v;        // L of (T, Hkv, D): cached keys (after RoPE) and values
  Buffer tokens, targets;          // (n) i32
  Buffer x;                        // (n, C) the residual stream, updated in place block by block
  BlockActivations block;          // one block's intermediates for a chunk; k, v unset (the layer's cache)
  Buffer final_norm, final_rstd;   // (n, C), (n)
  Buffer logits;                   // (n, V)
  Buffer loss;                     // (2) kAccumDType: [sum of nats, rows with a target]
};

// The kind of a buffer decides its dtype on a backend.
enum class ActKind {
  Value,  // activations and their gradients: Backend::activation_dtype()
  Stat,   // per-row statistics (rstd, lse) and logits: Backend::stat_dtype()
  Token,  // token ids and targets: I32
  Accum,  // loss accumulators: kAccumDType
};

struct ActivationSpec {
  std::string name;            // e.g. "layers.3.q"
  std::vector<int64_t> shape;  // row-major
  ActKind kind;
  Buffer* slot = nullptr;      // the struct field it is allocated into; null when listed for counting only
  std::vector<Buffer*> shared;  // more fields that view the same buffer (recomputed parts of other layers)
  size_t numel() const;
};

// Every buffer of Activations for (B, T) under recomputation r: a recomputed field is listed once
// ("recomputed.q") and shared by every layer, a kept one per layer ("layers.3.q"). With `a`, sizes a->resid
// and a->layers (kept if already sized) and points each spec at its field(s), for allocation or, on
// allocated activations, for freeing; without, the specs are for counting (the memory estimate).
std::vector<ActivationSpec> activation_specs(const ModelConfig& m, int64_t B, int64_t T, Recompute r,
                                             Activations* a = nullptr);

// Every buffer of DecoderBuffers for a capacity of T positions and chunks of n rows (n <= T).
std::vector<ActivationSpec> decoder_specs(const ModelConfig& m, int64_t T, int64_t n, DecoderBuffers* d = nullptr);

DType activation_dtype(ActKind kind, const Backend& be);

// Allocates every spec into its slot and shared fields (zero-filled, as Backend::alloc);
// release_activations frees them.
void allocate_activations(Backend& be, const std::vector<ActivationSpec>& specs);
void release_activations(Backend& be, const std::vector<ActivationSpec>& specs);

}  // namespace sp
