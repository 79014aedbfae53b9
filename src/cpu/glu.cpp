// Gated linear units on the CPU, forward and backward. With sig = sigmoid(g):
//   Sigmoid: out = sig * u,        dup = dout * sig,        dgate = dout * u * sig * (1 - sig)
//   Swish:   out = g * sig * u,    dup = dout * g * sig,    dgate = dout * u * sig * (1 + g * (1 - sig))
// Inside this file F is the element type (float or double). Convention (glu.h): dgate, dup overwritten.
#include "cpu/glu.h"

#include <cmath>

namespace sp {
namespace {

// 1 / (1 + e^-g) is safe at both ends: for very negative g, e^-g overflows to inf and the result is 0;
// for very positive g, e^-g underflows to 0 and the result is 1.
template <class F>
inline F sigmoid(F g) {
  return F(1) / (F(1) + std::exp(-g));
}

// act(g) and act'(g) of one unit
template <class F>
inline F act_value(F g, F sig, Glu act) {
  return act == Glu::Swish ? g * sig : sig;
}
template <class F>
inline F act_slope(F g, F sig, Glu act) {
  return act == Glu::Swish ? sig * (F(1) + g * (F(1) - sig)) : sig * (F(1) - sig);
}

}  // namespace

template <class F>
void glu_forward(F* out, const F* gate, const F* up, size_t n, Glu act) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) out[i] = act_value(gate[i], sigmoid(gate[i]), act) * up[i];
}

template <class F>
void glu_backward(F* dgate, F* dup, const F* dout, const F* gate, const F* up, size_t n, Glu act) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    const F g = gate[i], sig = sigmoid(g);
    dup[i] = dout[i] * act_value(g, sig, act);
    dgate[i] = dout[i] * up[i] * act_slope(g, sig, act);
  }
}

template void glu_forward<float>(float*, const float*, const float*, size_t, Glu);
template void glu_forward<double>(double*, const double*, const double*, size_t, Glu);
template void glu_backward<float>(float*, float*, const float*, const float*, const float*, size_t, Glu);
template void glu_backward<double>(double*, double*, const double*, const double*, const double*, size_t, Glu);

}  // namespace sp
