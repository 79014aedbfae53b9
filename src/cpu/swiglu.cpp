// SwiGLU gate on the CPU, forward and backward. With sig = sigmoid(g) and silu(g) = g * sig:
//   out = silu(g) * u,    dup = dout * silu(g),    dgate = dout * u * sig * (1 + g * (1 - sig))
// Inside this file F is the element type (float or double). Convention (swiglu.h): dgate, dup overwritten.
#include "cpu/swiglu.h"

#include <cmath>

namespace sp {
namespace {

// 1 / (1 + e^-g) is safe at both ends: for very negative g, e^-g overflows to inf and the result is 0;
// for very positive g, e^-g underflows to 0 and the result is 1.
template <class F>
inline F sigmoid(F g) {
  return F(1) / (F(1) + std::exp(-g));
}

}  // namespace

template <class F>
void swiglu_forward(F* out, const F* gate, const F* up, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

template <class F>
void swiglu_backward(F* dgate, F* dup, const F* dout, const F* gate, const F* up, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    const F g = gate[i], sig = sigmoid(g);
    dup[i] = dout[i] * g * sig;
    dgate[i] = dout[i] * up[i] * sig * (F(1) + g * (F(1) - sig));
  }
}

template void swiglu_forward<float>(float*, const float*, const float*, size_t);
template void swiglu_forward<double>(double*, const double*, const double*, size_t);
template void swiglu_backward<float>(float*, float*, const float*, const float*, const float*, size_t);
template void swiglu_backward<double>(double*, double*, const double*, const double*, const double*, size_t);

}  // namespace sp
