// Gated linear units, elementwise over n values: out = act(gate) * up with act = sigmoid (Glu::Sigmoid, the
// attention output gate) or silu(g) = g * sigmoid(g) (Glu::Swish, the MLP's SwiGLU).
// Backward convention: dgate and dup are overwritten.
#pragma once

#include "backend/op_args.h"

#include <cstddef>

namespace sp {

// out, gate, up (N, F) flattened to n = N * F
template <class T>
void glu_forward(T* out, const T* gate, const T* up, size_t n, Glu act);

template <class T>
void glu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, size_t n, Glu act);

}  // namespace sp
