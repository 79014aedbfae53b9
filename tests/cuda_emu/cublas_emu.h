// The harness's GEMM (cublas.cpp), shared by its cuBLAS and cuBLASLt entry points.
#pragma once

#include <cublas_v2.h>

namespace emu::blas {

// fp32 or bf16 operands and C, fp32 compute
bool types_ok(cudaDataType at, cudaDataType bt, cudaDataType ct, cublasComputeType_t compute);
// cuBLAS's argument rules for a column-major C (m x n) = op(A) (m x k) op(B) (k x n)
cublasStatus_t check(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, int lda, int ldb, int ldc);
// One checked GEMM, run now: C = alpha op(A) op(B) + beta C, fp32 accumulation, C rounded once
void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float* alpha, const void* A,
          cudaDataType at, int lda, const void* B, cudaDataType bt, int ldb, const float* beta, void* C,
          cudaDataType ct, int ldc);

}  // namespace emu::blas
