// With sig = sigmoid(g) and silu(g) = g * sig:
//   out = silu(g) * u,    dup = dout * silu(g),    dgate = dout * u * sig * (1 + g * (1 - sig))
#include "common.cuh"
#include "device_util.cuh"
#include "swiglu.cuh"

#include <cmath>

namespace sp::cuda {

namespace {

// 1 / (1 + e^-g) is safe at both ends: e^-g overflows to inf for very negative g (result 0) and
// underflows to 0 for very positive g (result 1).
__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

template <class T>
__global__ void swiglu_forward_kernel(T* out, const T* gate, const T* up, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) {
    const float g = to_f32(gate[i]);
    out[i] = from_f32<T>(g * sigmoid(g) * to_f32(up[i]));
  }
}

template <class T>
__global__ void swiglu_backward_kernel(T* dgate, T* dup, const T* dout, const T* gate, const T* up, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) {
    const float g = to_f32(gate[i]), u = to_f32(up[i]), d = to_f32(dout[i]), sig = sigmoid(g);
    dup[i] = from_f32<T>(d * g * sig);
    dgate[i] = from_f32<T>(d * u * sig * (1.0f + g * (1.0f - sig)));
  }
}

}  // namespace

template <class T>
void swiglu_forward_cuda(T* out, const T* gate, const T* up, size_t n, cudaStream_t stream) {
  SP_ASSERT(out && gate && up, "swiglu_forward_cuda: null pointer");
  SP_LAUNCH(swiglu_forward_kernel<T>, elementwise_grid(n), kElementwiseThreads, 0, stream, out, gate, up, n);
}

template <class T>
void swiglu_backward_cuda(T* dgate, T* dup, const T* dout, const T* gate, const T* up, size_t n,
                          cudaStream_t stream) {
  SP_ASSERT(dgate && dup && dout && gate && up, "swiglu_backward_cuda: null pointer");
  SP_LAUNCH(swiglu_backward_kernel<T>, elementwise_grid(n), kElementwiseThreads, 0, stream, dgate, dup, dout, gate,
            up, n);
}

using bf16 = __nv_bfloat16;
template void swiglu_forward_cuda<float>(float*, const float*, const float*, size_t, cudaStream_t);
template void swiglu_forward_cuda<bf16>(bf16*, const bf16*, const bf16*, size_t, cudaStream_t);
template void swiglu_backward_cuda<float>(float*, float*, const float*, const float*, const float*, size_t,
                                          cudaStream_t);
template void swiglu_backward_cuda<bf16>(bf16*, bf16*, const bf16*, const bf16*, const bf16*, size_t,
                                         cudaStream_t);

}  // namespace sp::cuda
