// Cross-entropy of the LM head on the GPU, on a chunk of fp32 logits (the matmuls around it, logits = x w^T
// and dx = dlogits w, dw += dlogits^T x, are cuBLAS calls of the caller; src/cpu/lm_head.h is the whole op):
//   loss = logsumexp(logits) - logits[target]      (never -log(softmax): that loses digits)
//   dlogits = (softmax(logits) - onehot(target)) * grad_scale, written over the logits when with_grad
// Rows whose target is < 0 are ignored: loss 0, valid 0, and a gradient row of exact zeros.
// The per-row losses and valid flags add up deterministically with sum_cuda (kernels/adamw.cuh).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace sp::cuda {

// Rows per chunk of the LM head: (kLmHeadChunkRows, V) fp32 logits are its one large temporary, and one
// block per row fills the GPU (the kernel's block size assumes chunks of this order).
constexpr size_t kLmHeadChunkRows = 256;

// logits (rows, V): in logits; out dlogits when with_grad
// row_loss (rows): lse - logit[target], 0 for ignored rows; row_valid (rows): 1, or 0 for ignored rows
// targets (rows): in [0, V), or < 0 for ignored rows
void cross_entropy_cuda(float* logits, float* row_loss, float* row_valid, const int32_t* targets, size_t rows,
                        size_t V, float grad_scale, bool with_grad, cudaStream_t stream);

}  // namespace sp::cuda
