// Rotary position embedding on the CPU (rotate-half, as in Hugging Face Llama), forward and backward.
// Each pair (x[i], x[i + D/2]) of a head vector at position t is rotated by the angle t * theta^(-2i/D);
// the backward rotates the gradient by the opposite angle (the transpose of a rotation is its inverse).
// Inside this file F is the element type (float or double); T is the sequence length.
#include "cpu/rope.h"

#include <cmath>
#include <vector>

#include "core/check.h"

namespace sp {
namespace {

// cos and sin of every (position, frequency) angle for positions pos0 .. pos0+T-1, both (T, D/2). The angle
// of a position is the same number whatever pos0, so a row rotates identically in a whole sequence and at
// an offset. Angles reach T radians, where a float
// angle would already be off by T * 6e-8, so they and their cos/sin are computed in double; the table is
// stored in F so the rotation loop runs in one precision and vectorises.
template <class F>
struct RopeTable {
  std::vector<F> cos, sin;  // (T, D/2)
  RopeTable(size_t T, size_t D, double theta, size_t pos0) : cos(T * (D / 2)), sin(T * (D / 2)) {
    const size_t half = D / 2;
    std::vector<double> inv_freq(half);  // (D/2)
    for (size_t i = 0; i < half; i++) inv_freq[i] = std::pow(theta, -2.0 * double(i) / double(D));
    // T * D/2 calls each of cos and sin are worth threads at long contexts.
#pragma omp parallel for schedule(static)
    for (size_t t = 0; t < T; t++)
      for (size_t i = 0; i < half; i++) {
        const double a = double(pos0 + t) * inv_freq[i];
        cos[t * half + i] = F(std::cos(a));
        sin[t * half + i] = F(std::sin(a));
      }
  }
};

// Rotates every head vector of x (B, T, Hx, D) in place, by +angle (sign = 1) or -angle (sign = -1).
template <class F>
void rotate(F* x, size_t B, size_t T, size_t Hx, size_t D, double theta, size_t pos0, F sign) {
  SP_ASSERT(D > 0 && D % 2 == 0, "rope needs an even head dimension, got D={}", D);
  SP_ASSERT(theta > 0, "rope theta={} must be > 0", theta);
  const RopeTable<F> table(T, D, theta, pos0);
  const size_t half = D / 2;
#pragma omp parallel for schedule(static)
  for (size_t bt = 0; bt < B * T; bt++) {
    const size_t t = bt % T;
    const F* cs = table.cos.data() + t * half;  // (D/2)
    const F* sn = table.sin.data() + t * half;  // (D/2)
    for (size_t h = 0; h < Hx; h++) {
      F* lo = x + (bt * Hx + h) * D;  // (D/2): first halves of the pairs
      F* hi = lo + half;              // (D/2): second halves
      for (size_t i = 0; i < half; i++) {
        const F s = sign * sn[i];
        const F x0 = lo[i], x1 = hi[i];
        lo[i] = x0 * cs[i] - x1 * s;
        hi[i] = x1 * cs[i] + x0 * s;
      }
    }
  }
}

}  // namespace

template <class F>
void rope_forward(F* x, size_t B, size_t T, size_t Hx, size_t D, double theta, size_t pos0) {
  rotate(x, B, T, Hx, D, theta, pos0, F(1));
}

template <class F>
void rope_backward(F* dx, size_t B, size_t T, size_t Hx, size_t D, double theta) {
  rotate(dx, B, T, Hx, D, theta, 0, F(-1));
}

template void rope_forward<float>(float*, size_t, size_t, size_t, size_t, double, size_t);
template void rope_forward<double>(double*, size_t, size_t, size_t, size_t, double, size_t);
template void rope_backward<float>(float*, size_t, size_t, size_t, size_t, double);
template void rope_backward<double>(double*, size_t, size_t, size_t, size_t, double);

}  // namespace sp
