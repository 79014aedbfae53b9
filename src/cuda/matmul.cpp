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

Blas::Blas(cudaStream_t stream) : stream_(stream) {
  CUBLAS_CHECK(cublasCreate(&handle_));
  CUBLAS_CHECK(cublasSetStream(handle_, stream));
  CUBLAS_CHECK(cublasLtCreate(&lt_));
  CUDA_CHECK(cudaMalloc(&lt_workspace_, kLtWorkspaceBytes));
}

Blas::~Blas() {
  for (auto& [key, p] : lt_plans_) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.desc);
  }
  cudaFree(lt_workspace_);
  cublasLtDestroy(lt_);
  cublasDestroy(handle_);
}

// Row-major X (r x c) is column-major X^T (c x r) with leading dimension c, so each product below is the
// transpose of the one in the comment.
void Blas::forward(Buffer out, Buffer inp, Buffer w, size_t N, size_t IC, size_t OC) {
  SP_ASSERT(out.numel >= N * OC && inp.numel >= N * IC && w.numel >= OC * IC, "matmul_forward sizes");
  // out^T (OC x N) = w (OC x IC, i.e. col-major IC x OC transposed) x inp^T (IC x N)
  gemm(handle_, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, IC, w, IC, inp, IC, 0.0f, out, OC);
}

// The column-major product of forward(): D^T (OC x N) = op_T(w: IC x OC) inp^T (IC x N) + C^T (OC x N).
const Blas::LtPlan& Blas::residual_plan(size_t N, size_t IC, size_t OC, DType dt) {
  const LtKey key{N, IC, OC, dt};
  if (auto it = lt_plans_.find(key); it != lt_plans_.end()) return it->second;
  LtPlan p;
  const cudaDataType t = blas_type(dt);
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans = CUBLAS_OP_T, none = CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans, sizeof(trans)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof(none)));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, t, uint64_t(dim(IC)), uint64_t(dim(OC)), int64_t(IC)));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, t, uint64_t(dim(IC)), uint64_t(dim(N)), int64_t(IC)));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, t, uint64_t(dim(OC)), uint64_t(dim(N)), int64_t(OC)));
  cublasLtMatmulPreference_t pref = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const size_t workspace = kLtWorkspaceBytes;
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                    sizeof(workspace)));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(lt_, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &found));
  cublasLtMatmulPreferenceDestroy(pref);
  SP_ASSERT(found > 0, "cuBLASLt has no algorithm for a ({}, {}) x ({}, {})^T product with a residual", N, IC, OC, IC);
  p.algo = result.algo;
  return lt_plans_.emplace(key, p).first->second;
}

void Blas::forward_residual(Buffer out, Buffer inp, Buffer w, Buffer residual, size_t N, size_t IC, size_t OC) {
  SP_ASSERT(out.numel >= N * OC && residual.numel >= N * OC && inp.numel >= N * IC && w.numel >= OC * IC,
            "matmul_forward_residual sizes");
  SP_ASSERT(out.dtype == inp.dtype && w.dtype == inp.dtype && residual.dtype == inp.dtype,
            "matmul_forward_residual: out {}, inp {}, w {}, residual {} must share a dtype", dtype_name(out.dtype),
            dtype_name(inp.dtype), dtype_name(w.dtype), dtype_name(residual.dtype));
  SP_ASSERT(out.ptr != residual.ptr, "matmul_forward_residual: out must not alias the residual");
  if (N == 0) return;
  const LtPlan& p = residual_plan(N, IC, OC, out.dtype);
  const float one = 1.0f;
  CUBLAS_CHECK(cublasLtMatmul(lt_, p.desc, &one, w.ptr, p.a, inp.ptr, p.b, &one, residual.ptr, p.c, out.ptr, p.c,
                              &p.algo, lt_workspace_, kLtWorkspaceBytes, stream_));
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
