#include "cuda/matmul.h"

#include "core/check.h"

#include <climits>

namespace sp::cuda {

namespace {

cudaDataType blas_type(DType dt) {
  switch (dt) {
    case DType::F32: return CUDA_R_32F;
    case DType::BF16: return CUDA_R_16BF;
    default: SP_ASSERT(false, "cuBLAS matmuls take f32 or bf16 buffers, not {}", dtype_name(dt));
  }
  return CUDA_R_32F;
}

int dim(size_t n) {
  SP_ASSERT(n <= size_t(INT_MAX), "a matmul dimension of {} is beyond cuBLAS's int range", n);
  return int(n);
}

// Column-major C (m x n) = alpha op(A) op(B) + beta C, fp32 accumulation.
void gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, size_t m, size_t n, size_t k, Buffer A,
          size_t lda, Buffer B, size_t ldb, float beta, Buffer C, size_t ldc) {
  SP_ASSERT(A.dtype == B.dtype, "matmul operands of two dtypes ({} and {})", dtype_name(A.dtype), dtype_name(B.dtype));
  const float alpha = 1.0f;
  CUBLAS_CHECK(cublasGemmEx(h, ta, tb, dim(m), dim(n), dim(k), &alpha, A.ptr, blas_type(A.dtype), dim(lda), B.ptr,
                            blas_type(B.dtype), dim(ldb), &beta, C.ptr, blas_type(C.dtype), dim(ldc),
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace

Blas::Blas(cudaStream_t stream) {
  CUBLAS_CHECK(cublasCreate(&handle_));
  CUBLAS_CHECK(cublasSetStream(handle_, stream));
}

Blas::~Blas() { cublasDestroy(handle_); }

// Row-major X (r x c) is column-major X^T (c x r) with leading dimension c, so each product below is the
// transpose of the one in the comment.
void Blas::forward(Buffer out, Buffer inp, Buffer w, size_t N, size_t IC, size_t OC) {
  SP_ASSERT(out.numel >= N * OC && inp.numel >= N * IC && w.numel >= OC * IC, "matmul_forward sizes");
  // out^T (OC x N) = w (OC x IC, i.e. col-major IC x OC transposed) x inp^T (IC x N)
  gemm(handle_, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, IC, w, IC, inp, IC, 0.0f, out, OC);
}

void Blas::backward(Buffer dinp, Buffer dw, Buffer dout, Buffer inp, Buffer w, size_t N, size_t IC, size_t OC,
                    bool accumulate_dinp) {
  SP_ASSERT(dout.numel >= N * OC && inp.numel >= N * IC && w.numel >= OC * IC, "matmul_backward sizes");
  if (dinp) {
    SP_ASSERT(dinp.numel >= N * IC, "matmul_backward dinp size");
    // dinp^T (IC x N) = w^T (IC x OC) dout^T (OC x N)
    gemm(handle_, CUBLAS_OP_N, CUBLAS_OP_N, IC, N, OC, w, IC, dout, OC, accumulate_dinp ? 1.0f : 0.0f, dinp, IC);
  }
  if (dw) {
    SP_ASSERT(dw.dtype == DType::F32 && dw.numel >= OC * IC, "matmul_backward: dw must be an f32 buffer of OC x IC");
    // dw^T (IC x OC) += inp^T (IC x N) dout (N x OC)
    gemm(handle_, CUBLAS_OP_N, CUBLAS_OP_T, IC, OC, N, inp, IC, dout, OC, 1.0f, dw, IC);
  }
}

}  // namespace sp::cuda
