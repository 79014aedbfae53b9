// AdamW (decoupled weight decay) and the global gradient norm on the GPU, as src/cpu/adamw.h:
//   g = grad * grad_scale (clipping folded in);  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   master -= lr * ( (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + weight_decay * master )
// The fp32 master weights and moments are updated in place; the working weights (W: float or
// __nv_bfloat16) are then written as master rounded to nearest even. The gradient is read only.
// The sums (sum_squares_cuda for the norm, sum_cuda for per-row losses) accumulate in fp64 through fixed
// per-block partials in a caller-allocated scratch of sum_scratch_bytes(n) bytes: the same bits every run.
#pragma once

#include "backend/op_args.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>

namespace sp::cuda {

// The step's constants in fp32, each formed on the host in double (1 - beta and the bias corrections are
// not rounded twice).
struct AdamWStep {
  float lr, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, weight_decay;
  float bias_correction1, bias_correction2;  // 1 - beta^t for the 1-based step t
  float grad_scale;
};

inline AdamWStep adamw_step(const AdamWArgs& a) {
  const double t = double(a.step);
  return {float(a.lr),           float(a.beta1),        float(a.beta2),
          float(1.0 - a.beta1),  float(1.0 - a.beta2),  float(a.eps),
          float(a.weight_decay), float(1.0 - std::pow(a.beta1, t)), float(1.0 - std::pow(a.beta2, t)),
          float(a.grad_scale)};
}

// master, grad, m, v (n) fp32; weights (n) = round(master) afterwards, or nullptr when the working copy is
// the master itself
template <class W>
void adamw_cuda(float* master, W* weights, const float* grad, float* m, float* v, size_t n, AdamWStep a,
                cudaStream_t stream);

size_t sum_scratch_bytes(size_t n);
inline size_t sum_squares_scratch_bytes(size_t n) { return sum_scratch_bytes(n); }

// out (1, device) += sum of x (n)^2
void sum_squares_cuda(double* out, const float* x, size_t n, void* scratch, cudaStream_t stream);

// out (1, device) += sum of x (n)
void sum_cuda(double* out, const float* x, size_t n, void* scratch, cudaStream_t stream);

}  // namespace sp::cuda
