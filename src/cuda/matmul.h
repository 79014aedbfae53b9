// The model's matmuls on cuBLAS: row-major (N, IC) x (OC, IC)^T products with fp32 accumulation, operands
// in the buffers' dtypes (bf16 or fp32), weight gradients accumulated in fp32 (beta = 1).
#pragma once

#include "backend/backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace sp::cuda {

class Blas {
public:
  explicit Blas(cudaStream_t stream);
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  // out (N, OC) = inp (N, IC) w^T, w (OC, IC); out may be fp32 for bf16 operands
  void forward(Buffer out, Buffer inp, Buffer w, size_t N, size_t IC, size_t OC);
  // dinp (N, IC) = (or += when accumulate_dinp) dout (N, OC) w;  dw (OC, IC) += dout^T inp (dw fp32)
  void backward(Buffer dinp, Buffer dw, Buffer dout, Buffer inp, Buffer w, size_t N, size_t IC, size_t OC,
                bool accumulate_dinp);

private:
  cublasHandle_t handle_ = nullptr;
};

}  // namespace sp::cuda
