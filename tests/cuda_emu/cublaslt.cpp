// The cuBLASLt calls the CUDA backend uses, for the harness (docs/cuda_harness.md): D = alpha op(A) op(B)
// + beta C with C and D separate matrices of one layout, over the GEMM of cublas.cpp. Descriptors hold what
// the calls set (compute type, transposes, layouts); the heuristic offers one algorithm, which the matmul
// ignores; the workspace is unused. D is computed as cuBLASLt does: the fp32 sum of the product and beta C,
// rounded once to D's dtype. Anything else answers CUBLAS_STATUS_NOT_SUPPORTED.
#include <cublasLt.h>

#include "cublas_emu.h"
#include "streams.h"

#include <cstring>
#include <vector>

struct cublasLtContext {};

namespace {

struct Desc {  // in cublasLtMatmulDescOpaque_t
  cublasComputeType_t compute;
  cudaDataType scale;
  cublasOperation_t ta, tb;
};
struct Layout {  // in cublasLtMatrixLayoutOpaque_t
  cudaDataType type;
  uint64_t rows, cols;
  int64_t ld;
};
static_assert(sizeof(Desc) <= sizeof(cublasLtMatmulDescOpaque_t) && sizeof(Layout) <= sizeof(cublasLtMatrixLayoutOpaque_t));

template <class T, class Opaque>
T get(const Opaque* o) {
  T t;
  std::memcpy(&t, o->data, sizeof(T));
  return t;
}
template <class T, class Opaque>
void put(Opaque* o, const T& t) {
  std::memcpy(o->data, &t, sizeof(T));
}
Desc desc(cublasLtMatmulDesc_t d) { return get<Desc>(d); }
Layout layout(cublasLtMatrixLayout_t l) { return get<Layout>(l); }

size_t elem_size(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

}  // namespace

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) {
  *h = new cublasLtContext();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t compute, cudaDataType_t scale) {
  if (scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  *d = new cublasLtMatmulDescOpaque_t();
  put(*d, Desc{compute, scale, CUBLAS_OP_N, CUBLAS_OP_N});
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
  delete d;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t bytes) {
  if (attr != CUBLASLT_MATMUL_DESC_TRANSA && attr != CUBLASLT_MATMUL_DESC_TRANSB) return CUBLAS_STATUS_NOT_SUPPORTED;
  int32_t op = 0;  // cublasOperation_t, an int32 attribute
  if (bytes != sizeof(op)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(&op, buf, sizeof(op));
  Desc v = desc(d);
  (attr == CUBLASLT_MATMUL_DESC_TRANSA ? v.ta : v.tb) = cublasOperation_t(op);
  put(d, v);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
  if (ld < int64_t(rows) || ld < 1) return CUBLAS_STATUS_INVALID_VALUE;
  *l = new cublasLtMatrixLayoutOpaque_t();
  put(*l, Layout{type, rows, cols, ld});
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
  delete l;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* p) {
  *p = new cublasLtMatmulPreferenceOpaque_t();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t, cublasLtMatmulPreferenceAttributes_t,
                                                    const void*, size_t) {
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
  delete p;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t,
                                              cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                              cublasLtMatmulPreference_t, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* returned) {
  if (requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
  results[0] = cublasLtMatmulHeuristicResult_t{};
  results[0].state = CUBLAS_STATUS_SUCCESS;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t d, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t ad, const void* B, cublasLtMatrixLayout_t bd, const void* beta,
                              const void* C, cublasLtMatrixLayout_t cd, void* D, cublasLtMatrixLayout_t dd,
                              const cublasLtMatmulAlgo_t*, void*, size_t, cudaStream_t stream) {
  const Desc op = desc(d);
  const Layout a = layout(ad), b = layout(bd), c = layout(cd), o = layout(dd);
  if (c.type != o.type || c.rows != o.rows || c.cols != o.cols || c.ld != o.ld) return CUBLAS_STATUS_NOT_SUPPORTED;
  const bool ta = op.ta != CUBLAS_OP_N, tb = op.tb != CUBLAS_OP_N;
  const uint64_t m = ta ? a.cols : a.rows, k = ta ? a.rows : a.cols, n = tb ? b.rows : b.cols;
  if ((tb ? b.cols : b.rows) != k || o.rows != m || o.cols != n) return CUBLAS_STATUS_INVALID_VALUE;
  const int im = int(m), in = int(n), ik = int(k);
  if (!emu::blas::types_ok(a.type, b.type, o.type, op.compute)) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (const cublasStatus_t s = emu::blas::check(op.ta, op.tb, im, in, ik, int(a.ld), int(b.ld), int(o.ld));
      s != CUBLAS_STATUS_SUCCESS)
    return s;
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  emu::enqueue(stream, [=] {
    // D = C first (an exact copy, one dtype), then D = alpha op(A) op(B) + beta D in fp32, rounded once
    if (D != C && n > 0) {
      const size_t es = elem_size(o.type);
      for (uint64_t j = 0; j < n; ++j)
        std::memmove(static_cast<char*>(D) + j * uint64_t(o.ld) * es, static_cast<const char*>(C) + j * uint64_t(c.ld) * es,
                     m * es);
    }
    emu::blas::gemm(op.ta, op.tb, im, in, ik, &al, A, a.type, int(a.ld), B, b.type, int(b.ld), &be, D, o.type,
                    int(o.ld));
  });
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
