// The model's matmuls on cuBLAS: row-major (N, IC) x (OC, IC)^T products with fp32 accumulation, operands
// in the buffers' dtypes (bf16 or fp32), weight gradients accumulated in fp32 (beta = 1). The projections
// back into the residual stream run on cuBLASLt, whose epilogue adds the residual from a matrix C other than
// the output D (cublasGemmEx's beta needs C = D).
#pragma once

#include "backend/backend.h"
#include "dist/memory.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <map>
#include <tuple>

namespace sp::cuda {

class Blas {
public:
  static constexpr size_t kLtWorkspaceBytes = kGpuMatmulWorkspaceBytes;  // 32 MiB, as NVIDIA suggests for Hopper
  explicit Blas(cudaStream_t stream);
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  // out (N, OC) = inp (N, IC) w^T, w (OC, IC); out may be fp32 for bf16 operands
  void forward(Buffer out, Buffer inp, Buffer w, size_t N, size_t IC, size_t OC);
  // out (N, OC) = residual (N, OC) + inp w^T, the sum in fp32 and rounded once; out, residual and the
  // operands of one dtype; out must not alias residual.
  void forward_residual(Buffer out, Buffer inp, Buffer w, Buffer residual, size_t N, size_t IC, size_t OC);
  // dinp (N, IC) = (or += when accumulate_dinp) dout (N, OC) w;  dw (OC, IC) += dout^T inp (dw fp32)
  void backward(Buffer dinp, Buffer dw, Buffer dout, Buffer inp, Buffer w, size_t N, size_t IC, size_t OC,
                bool accumulate_dinp);

private:
  // A cuBLASLt product's descriptors and the algorithm the heuristic chose, made once per shape and dtype.
  struct LtPlan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;  // c also describes d
    cublasLtMatmulAlgo_t algo{};
  };
  using LtKey = std::tuple<size_t, size_t, size_t, DType>;  // N, IC, OC, dtype
  const LtPlan& residual_plan(size_t N, size_t IC, size_t OC, DType dt);

  cudaStream_t stream_;
  cublasHandle_t handle_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  void* lt_workspace_ = nullptr;  // kLtWorkspaceBytes, for cuBLASLt's split-K and stream-K kernels
  std::map<LtKey, LtPlan> lt_plans_;
};

}  // namespace sp::cuda
