// AdamW (decoupled weight decay) and the global gradient norm.
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  with g = grad * grad_scale (clipping folded in)
//   p -= lr * ( (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + weight_decay * p )
// p is the master weights; they and the moments are updated in place; the gradient is read only.
#pragma once

#include "backend/op_args.h"

#include <cstddef>

namespace sp {

// master, grad, m, v (n)
template <class T>
void adamw_update(T* master, const T* grad, T* m, T* v, size_t n, const AdamWArgs& a);

// sum of x^2 over n values, accumulated in double in a fixed order (deterministic for a thread count)
template <class T>
double sum_squares(const T* x, size_t n);

}  // namespace sp
