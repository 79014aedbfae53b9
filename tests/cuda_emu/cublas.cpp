// The cuBLAS calls the CUDA backend uses, for the harness (docs/cuda_harness.md), over OpenBLAS.
//
// Column-major like cuBLAS: C (m x n, ldc) = alpha op(A) (m x k) op(B) (k x n) + beta C, with A and B in
// fp32 or bf16 (widened exactly to fp32), fp32 accumulation, C in fp32 or bf16 (rounded to nearest even),
// alpha and beta as host floats (read at the call). Anything else answers CUBLAS_STATUS_NOT_SUPPORTED. A
// call is checked when it is made and runs on the handle's stream (streams.h).
#include <cblas.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>

#include "cublas_emu.h"
#include "streams.h"

#include <vector>

struct cublasContext {
  cudaStream_t stream = nullptr;
};

namespace {

bool supported(cudaDataType t) { return t == CUDA_R_32F || t == CUDA_R_16BF; }

// The stored matrix (ld x cols) as fp32: the original when it already is, else a widened copy.
const float* as_float(const void* p, cudaDataType t, size_t elems, std::vector<float>& tmp) {
  if (t == CUDA_R_32F) return static_cast<const float*>(p);
  tmp.resize(elems);
  const auto* h = static_cast<const __nv_bfloat16*>(p);
  for (size_t i = 0; i < elems; ++i) tmp[i] = __bfloat162float(h[i]);
  return tmp.data();
}

CBLAS_TRANSPOSE trans(cublasOperation_t op) { return op == CUBLAS_OP_N ? CblasNoTrans : CblasTrans; }

}  // namespace

namespace emu::blas {

cublasStatus_t check(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, int lda, int ldb, int ldc) {
  if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  if (lda < (ta == CUBLAS_OP_N ? m : k) || ldb < (tb == CUBLAS_OP_N ? k : n) || ldc < m || lda < 1 || ldb < 1 || ldc < 1)
    return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}

void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float* alpha, const void* A,
          cudaDataType at, int lda, const void* B, cudaDataType bt, int ldb, const float* beta, void* C,
          cudaDataType ct, int ldc) {
  if (m == 0 || n == 0) return;
  std::vector<float> a_tmp, b_tmp, c_tmp;
  const float* a = as_float(A, at, size_t(lda) * size_t(ta == CUBLAS_OP_N ? k : m), a_tmp);
  const float* b = as_float(B, bt, size_t(ldb) * size_t(tb == CUBLAS_OP_N ? n : k), b_tmp);
  float* c = static_cast<float*>(C);
  const size_t c_elems = size_t(ldc) * size_t(n - 1) + size_t(m);
  if (ct == CUDA_R_16BF) {
    c_tmp.resize(c_elems);
    const auto* h = static_cast<const __nv_bfloat16*>(C);
    if (*beta != 0.0f)
      for (size_t i = 0; i < c_elems; ++i) c_tmp[i] = __bfloat162float(h[i]);
    c = c_tmp.data();
  }
  if (k == 0) {  // C = beta C
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) c[size_t(j) * size_t(ldc) + size_t(i)] *= *beta;
  } else {
    // beta = 0 must ignore C (it may hold NaN bytes); BLAS does, for beta exactly 0
    cblas_sgemm(CblasColMajor, trans(ta), trans(tb), m, n, k, *alpha, a, lda, b, ldb, *beta, c, ldc);
  }
  if (ct == CUDA_R_16BF) {
    auto* h = static_cast<__nv_bfloat16*>(C);
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        const size_t e = size_t(j) * size_t(ldc) + size_t(i);
        h[e] = __float2bfloat16(c[e]);
      }
  }
}

bool types_ok(cudaDataType at, cudaDataType bt, cudaDataType ct, cublasComputeType_t compute) {
  return supported(at) && supported(bt) && supported(ct) &&
         (compute == CUBLAS_COMPUTE_32F || compute == CUBLAS_COMPUTE_32F_FAST_16BF ||
          compute == CUBLAS_COMPUTE_32F_PEDANTIC);
}

}  // namespace emu::blas

using emu::blas::check;
using emu::blas::gemm;
using emu::blas::types_ok;

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t* h) {
  *h = new cublasContext();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s) {
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t, void*, size_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType at, int lda, const void* B, cudaDataType bt,
                            int ldb, const void* beta, void* C, cudaDataType ct, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t) {
  return cublasGemmStridedBatchedEx(h, ta, tb, m, n, k, alpha, A, at, lda, 0, B, bt, ldb, 0, beta, C, ct, ldc, 0, 1,
                                    compute, CUBLAS_GEMM_DEFAULT);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void* alpha, const void* A, cudaDataType at, int lda,
                                          long long stride_a, const void* B, cudaDataType bt, int ldb,
                                          long long stride_b, const void* beta, void* C, cudaDataType ct, int ldc,
                                          long long stride_c, int batches, cublasComputeType_t compute,
                                          cublasGemmAlgo_t) {
  if (!types_ok(at, bt, ct, compute)) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (const cublasStatus_t s = check(ta, tb, m, n, k, lda, ldb, ldc); s != CUBLAS_STATUS_SUCCESS) return s;
  if (batches < 0) return CUBLAS_STATUS_INVALID_VALUE;
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  emu::enqueue(h->stream, [=] {
    const size_t as = at == CUDA_R_32F ? 4 : 2, bs = bt == CUDA_R_32F ? 4 : 2, cs = ct == CUDA_R_32F ? 4 : 2;
    for (int i = 0; i < batches; ++i)
      gemm(ta, tb, m, n, k, &al, static_cast<const char*>(A) + size_t(i) * stride_a * as, at, lda,
           static_cast<const char*>(B) + size_t(i) * stride_b * bs, bt, ldb, &be,
           static_cast<char*>(C) + size_t(i) * stride_c * cs, ct, ldc);
  });
  return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED (cuda-emu: fp32/bf16 GEMMs with fp32 compute only)";
    default: return "CUBLAS_STATUS_INTERNAL_ERROR";
  }
}

}  // extern "C"
