#include "cpu/matmul.h"

#include <cblas.h>

namespace sp {

namespace {

// One name for sgemm and dgemm, row-major.
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, size_t M, size_t N, size_t K, float alpha, const float* A,
          size_t lda, const float* B, size_t ldb, float beta, float* C, size_t ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, int(M), int(N), int(K), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, size_t M, size_t N, size_t K, double alpha, const double* A,
          size_t lda, const double* B, size_t ldb, double beta, double* C, size_t ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, int(M), int(N), int(K), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

}  // namespace

template <class T>
void matmul_forward(T* out, const T* inp, const T* w, size_t N, size_t IC, size_t OC) {
  // out (N, OC) = inp (N, IC) . w^T (IC, OC)
  gemm(CblasNoTrans, CblasTrans, N, OC, IC, T(1), inp, IC, w, IC, T(0), out, OC);
}

template <class T>
void matmul_backward(T* dinp, T* dw, const T* dout, const T* inp, const T* w, size_t N, size_t IC, size_t OC,
                     bool accumulate_dinp) {
  // dinp (N, IC) = dout (N, OC) . w (OC, IC)
  if (dinp) gemm(CblasNoTrans, CblasNoTrans, N, IC, OC, T(1), dout, OC, w, IC, T(accumulate_dinp ? 1 : 0), dinp, IC);
  // dw (OC, IC) += dout^T (OC, N) . inp (N, IC)
  if (dw) gemm(CblasTrans, CblasNoTrans, OC, IC, N, T(1), dout, OC, inp, IC, T(1), dw, IC);
}

template void matmul_forward<float>(float*, const float*, const float*, size_t, size_t, size_t);
template void matmul_forward<double>(double*, const double*, const double*, size_t, size_t, size_t);
template void matmul_backward<float>(float*, float*, const float*, const float*, const float*, size_t, size_t,
                                     size_t, bool);
template void matmul_backward<double>(double*, double*, const double*, const double*, const double*, size_t,
                                      size_t, size_t, bool);

}  // namespace sp
