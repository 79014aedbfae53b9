// Fake quantization of linear-layer inputs on the GPU, in place (as src/cpu/act_quant.h): int8 or fp8
// (e4m3) per row or per tensor, with LLM.int8's 16-bit outlier columns. T is float or __nv_bfloat16; the
// arithmetic is fp32, the result rounded to T once.
#pragma once

#include "backend/op_args.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace sp::cuda {

size_t act_quant_scratch_bytes(size_t N, size_t C);

// x (N, C); scratch of act_quant_scratch_bytes(N, C) bytes
template <class T>
void act_quant_cuda(T* x, size_t N, size_t C, const ActQuantArgs& a, void* scratch, cudaStream_t stream);

}  // namespace sp::cuda
