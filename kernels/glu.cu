// With sig = sigmoid(g):
//   Sigmoid: out = sig * u,        dup = dout * sig,        dgate = dout * u * sig * (1 - sig)
//   Swish:   out = g * sig * u,    dup = dout * g * sig,    dgate = dout * u * sig * (1 + g * (1 - sig))
#include "common.cuh"
#include "device_util.cuh"
#include "glu.cuh"

#include <cmath>

namespace sp::cuda {

namespace {

// 1 / (1 + e^-g) is safe at both ends: e^-g overflows to inf for very negative g (result 0) and
// underflows to 0 for very positive g (result 1).
__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

// act(g) and act'(g); the activation is a template argument, so each kernel has one formula
template <Glu A>
__device__ __forceinline__ float act_value(float g, float sig) {
  return A == Glu::Swish ? g * sig : sig;
}
template <Glu A>
__device__ __forceinline__ float act_slope(float g, float sig) {
  return A == Glu::Swish ? sig * (1.0f + g * (1.0f - sig)) : sig * (1.0f - sig);
}

template <Glu A, class T>
__global__ void glu_forward_kernel(T* out, const T* gate, const T* up, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) {
    const float g = to_f32(gate[i]);
    out[i] = from_f32<T>(act_value<A>(g, sigmoid(g)) * to_f32(up[i]));
  }
}

template <Glu A, class T>
__global__ void glu_backward_kernel(T* dgate, T* dup, const T* dout, const T* gate, const T* up, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) {
    const float g = to_f32(gate[i]), u = to_f32(up[i]), d = to_f32(dout[i]), sig = sigmoid(g);
    dup[i] = from_f32<T>(d * act_value<A>(g, sig));
    dgate[i] = from_f32<T>(d * u * act_slope<A>(g, sig));
  }
}

}  // namespace

template <class T>
void glu_forward_cuda(T* out, const T* gate, const T* up, size_t n, Glu act, cudaStream_t stream) {
  SP_ASSERT(out && gate && up, "glu_forward_cuda: null pointer");
  const auto kernel = act == Glu::Swish ? glu_forward_kernel<Glu::Swish, T> : glu_forward_kernel<Glu::Sigmoid, T>;
  SP_LAUNCH(kernel, elementwise_grid(n), kElementwiseThreads, 0, stream, out, gate, up, n);
}

template <class T>
void glu_backward_cuda(T* dgate, T* dup, const T* dout, const T* gate, const T* up, size_t n, Glu act,
                       cudaStream_t stream) {
  SP_ASSERT(dgate && dup && dout && gate && up, "glu_backward_cuda: null pointer");
  const auto kernel = act == Glu::Swish ? glu_backward_kernel<Glu::Swish, T> : glu_backward_kernel<Glu::Sigmoid, T>;
  SP_LAUNCH(kernel, elementwise_grid(n), kElementwiseThreads, 0, stream, dgate, dup, dout, gate, up, n);
}

using bf16 = __nv_bfloat16;
template void glu_forward_cuda<float>(float*, const float*, const float*, size_t, Glu, cudaStream_t);
template void glu_forward_cuda<bf16>(bf16*, const bf16*, const bf16*, size_t, Glu, cudaStream_t);
template void glu_backward_cuda<float>(float*, float*, const float*, const float*, const float*, size_t, Glu,
                                       cudaStream_t);
template void glu_backward_cuda<bf16>(bf16*, bf16*, const bf16*, const bf16*, const bf16*, size_t, Glu,
                                      cudaStream_t);

}  // namespace sp::cuda
