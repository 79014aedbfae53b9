// Token embedding lookup, forward and backward.
// Backward convention: dwte accumulates (+=), deterministically (no atomics, a fixed summation order).
#pragma once

#include <cstddef>
#include <cstdint>

namespace sp {

// out (N, C) = wte[tokens[n]], tokens (N) in [0, V), wte (V, C)
template <class T>
void embedding_forward(T* out, const int32_t* tokens, const T* wte, size_t N, size_t C);

// dwte (V, C) +=, dout (N, C), tokens (N)
template <class T>
void embedding_backward(T* dwte, const T* dout, const int32_t* tokens, size_t N, size_t C);

}  // namespace sp
