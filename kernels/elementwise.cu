#include "common.cuh"
#include "device_util.cuh"
#include "elementwise.cuh"

#include <type_traits>

namespace sp::cuda {

namespace {

template <class Dst, class Src>
__global__ void convert_kernel(Dst* dst, const Src* src, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) dst[i] = from_f32<Dst>(to_f32(src[i]));
}

template <class T>
__global__ void accumulate_kernel(T* dst, const T* src, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) dst[i] = from_f32<T>(to_f32(dst[i]) + to_f32(src[i]));
}

}  // namespace

template <class Dst, class Src>
void convert_cuda(Dst* dst, const Src* src, size_t n, cudaStream_t stream) {
  SP_ASSERT(dst && src, "convert_cuda: null pointer");
  if constexpr (std::is_same_v<Dst, Src>) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(Dst), cudaMemcpyDeviceToDevice, stream));
  } else {
    SP_LAUNCH((convert_kernel<Dst, Src>), elementwise_grid(n), kElementwiseThreads, 0, stream, dst, src, n);
  }
}

template <class T>
void accumulate_cuda(T* dst, const T* src, size_t n, cudaStream_t stream) {
  SP_ASSERT(dst && src, "accumulate_cuda: null pointer");
  SP_LAUNCH(accumulate_kernel<T>, elementwise_grid(n), kElementwiseThreads, 0, stream, dst, src, n);
}

using bf16 = __nv_bfloat16;
template void convert_cuda<float, float>(float*, const float*, size_t, cudaStream_t);
template void convert_cuda<float, bf16>(float*, const bf16*, size_t, cudaStream_t);
template void convert_cuda<bf16, float>(bf16*, const float*, size_t, cudaStream_t);
template void convert_cuda<bf16, bf16>(bf16*, const bf16*, size_t, cudaStream_t);
template void accumulate_cuda<float>(float*, const float*, size_t, cudaStream_t);
template void accumulate_cuda<bf16>(bf16*, const bf16*, size_t, cudaStream_t);

}  // namespace sp::cuda
