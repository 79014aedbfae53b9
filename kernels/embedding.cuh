// Token embedding on the GPU, forward (row gather) and backward (row scatter-add).
// Backward convention: dwte accumulates (+=), deterministically: the dout rows of one token are added in
// row order by one block, with no atomics (as the CPU reference, src/cpu/embedding.h).
// T (activations and wte) is float or __nv_bfloat16; dwte is fp32. Token ids are trusted to lie in [0, V).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace sp::cuda {

// out (N, C) = wte[tokens[n]]; tokens (N), wte (V, C)
template <class T>
void embedding_forward_cuda(T* out, const int32_t* tokens, const T* wte, size_t N, size_t C, cudaStream_t stream);

// dwte (V, C) +=, dout (N, C), tokens (N)
template <class T>
void embedding_backward_cuda(float* dwte, const T* dout, const int32_t* tokens, size_t N, size_t C,
                             cudaStream_t stream);

}  // namespace sp::cuda
