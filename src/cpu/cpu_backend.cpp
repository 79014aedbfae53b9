// The CPU backend: the Backend interface over the reference ops of src/cpu/, in fp32 (training) or fp64
// (gradient checks). Every call runs synchronously on the calling thread plus OpenMP/BLAS workers.
// Weights, gradients, activations, statistics and the optimizer state all use that one float type, so the
// optimizer's master weights are the parameter buffer itself (docs/architecture.md, precision).
#include "cpu/cpu_backend.h"

#include "backend/peak.h"
#include "core/check.h"
#include "cpu/adamw.h"
#include "cpu/attention.h"
#include "cpu/embedding.h"
#include "cpu/lm_head.h"
#include "cpu/matmul.h"
#include "cpu/rmsnorm.h"
#include "cpu/rope.h"
#include "cpu/ssmax.h"
#include "cpu/act_quant.h"
#include "cpu/glu.h"

#include <cblas.h>
#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <vector>

namespace sp {

namespace {

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() { return DType::F32; }
template <>
constexpr DType dtype_of<double>() { return DType::F64; }
template <>
constexpr DType dtype_of<int32_t>() { return DType::I32; }

// The typed pointer of a buffer holding at least `n` elements.
template <class T>
T* at(Buffer b, size_t n, const char* what) {
  SP_ASSERT(b.dtype == dtype_of<T>(), "{}: buffer is {}, expected {}", what, dtype_name(b.dtype),
            dtype_name(dtype_of<T>()));
  SP_ASSERT(b.numel >= n, "{}: buffer holds {} elements, needs {}", what, b.numel, n);
  return static_cast<T*>(b.ptr);
}

class CpuBackend final : public Backend {
public:
  CpuBackend(DType dt, int threads) : dtype_(dt) {
    SP_ASSERT(dt == DType::F32 || dt == DType::F64, "the CPU backend computes in f32 or f64");
    if (threads > 0) {
      omp_set_num_threads(threads);
      openblas_set_num_threads(threads);
    }
  }

  std::string name() const override { return dtype_ == DType::F32 ? "cpu" : "cpu-f64"; }
  DType weight_dtype() const override { return dtype_; }
  DType grad_dtype() const override { return dtype_; }
  DType activation_dtype() const override { return dtype_; }
  DType stat_dtype() const override { return dtype_; }
  DType master_dtype() const override { return dtype_; }
  double peak_flops() const override { return cpu_peak_fp32_flops(); }
  std::string peak_description() const override { return "CPU peak (measured fp32 GEMM)"; }

  Buffer alloc(size_t numel, DType dt) override {
    SP_ASSERT(dt != DType::BF16, "the CPU backend has no bf16");
    const size_t bytes = std::max<size_t>(64, (numel * dtype_size(dt) + 63) / 64 * 64);
    void* p = std::aligned_alloc(64, bytes);
    if (!p) fail("out of memory: cannot allocate {} MiB on the CPU", bytes >> 20);
    std::memset(p, 0, bytes);
    memory_.in_use += bytes;
    memory_.peak = std::max(memory_.peak, memory_.in_use);
    return Buffer{p, numel, dt};
  }
  void release(Buffer b) override {
    if (b.ptr) memory_.in_use -= std::max<size_t>(64, (b.numel * dtype_size(b.dtype) + 63) / 64 * 64);
    std::free(b.ptr);
  }
  MemoryUse memory_use() const override { return memory_; }

  void upload(Buffer dst, std::span<const float> src) override { convert_in(dst, src); }
  void upload(Buffer dst, std::span<const double> src) override { convert_in(dst, src); }
  void upload(Buffer dst, std::span<const int32_t> src) override {
    std::memcpy(at<int32_t>(dst, src.size(), "upload"), src.data(), src.size_bytes());
  }
  void download(std::span<float> dst, Buffer src) override { convert_out(dst, src); }
  void download(std::span<double> dst, Buffer src) override { convert_out(dst, src); }
  void sync() override {}

  void fill_zero(Buffer x) override { std::memset(x.ptr, 0, x.numel * dtype_size(x.dtype)); }
  void copy(Buffer dst, Buffer src) override {
    SP_ASSERT(dst.dtype == src.dtype && dst.numel >= src.numel, "copy: mismatched buffers");
    std::memcpy(dst.ptr, src.ptr, src.numel * dtype_size(src.dtype));
  }
  void accumulate(Buffer dst, Buffer src) override {
    typed([&]<class T>(T) {
      T* d = at<T>(dst, src.numel, "accumulate");
      const T* s = at<T>(src, src.numel, "accumulate");
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < src.numel; ++i) d[i] += s[i];
    });
  }

  void embedding_forward(Buffer out, Buffer tokens, Buffer wte, size_t N, size_t C) override {
    typed([&]<class T>(T) {
      sp::embedding_forward(at<T>(out, N * C, "embedding out"), at<int32_t>(tokens, N, "tokens"),
                            at<T>(wte, C, "wte"), N, C);
    });
  }
  void embedding_backward(Buffer dwte, Buffer dout, Buffer tokens, size_t N, size_t C) override {
    typed([&]<class T>(T) {
      sp::embedding_backward(at<T>(dwte, C, "dwte"), at<T>(dout, N * C, "embedding dout"),
                             at<int32_t>(tokens, N, "tokens"), N, C);
    });
  }
  void rmsnorm_forward(Buffer out, Buffer rstd, Buffer x, Buffer w, size_t N, size_t C, double eps) override {
    typed([&]<class T>(T) {
      sp::rmsnorm_forward(at<T>(out, N * C, "rmsnorm out"), at<T>(rstd, N, "rstd"), at<T>(x, N * C, "rmsnorm x"),
                          at<T>(w, C, "rmsnorm w"), N, C, eps);
    });
  }
  void rmsnorm_backward(Buffer dx, Buffer dw, Buffer dout, Buffer x, Buffer w, Buffer rstd, size_t N,
                        size_t C) override {
    typed([&]<class T>(T) {
      sp::rmsnorm_backward(at<T>(dx, N * C, "rmsnorm dx"), at<T>(dw, C, "rmsnorm dw"),
                           at<T>(dout, N * C, "rmsnorm dout"), at<T>(x, N * C, "rmsnorm x"),
                           at<T>(w, C, "rmsnorm w"), at<T>(rstd, N, "rstd"), N, C);
    });
  }
  void matmul_forward(Buffer out, Buffer inp, Buffer w, size_t N, size_t IC, size_t OC) override {
    typed([&]<class T>(T) {
      sp::matmul_forward(at<T>(out, N * OC, "matmul out"), at<T>(inp, N * IC, "matmul inp"),
                         at<T>(w, OC * IC, "matmul w"), N, IC, OC);
    });
  }
  void matmul_backward(Buffer dinp, Buffer dw, Buffer dout, Buffer inp, Buffer w, size_t N, size_t IC, size_t OC,
                       bool accumulate_dinp) override {
    typed([&]<class T>(T) {
      sp::matmul_backward(dinp ? at<T>(dinp, N * IC, "matmul dinp") : nullptr, at<T>(dw, OC * IC, "matmul dw"),
                          at<T>(dout, N * OC, "matmul dout"), at<T>(inp, N * IC, "matmul inp"),
                          at<T>(w, OC * IC, "matmul w"), N, IC, OC, accumulate_dinp);
    });
  }
  void rope_forward(Buffer x, size_t B, size_t T_, size_t Hx, size_t D, double theta, size_t pos0) override {
    typed([&]<class T>(T) { sp::rope_forward(at<T>(x, B * T_ * Hx * D, "rope x"), B, T_, Hx, D, theta, pos0); });
  }
  void rope_backward(Buffer dx, size_t B, size_t T_, size_t Hx, size_t D, double theta) override {
    typed([&]<class T>(T) { sp::rope_backward(at<T>(dx, B * T_ * Hx * D, "rope dx"), B, T_, Hx, D, theta); });
  }
  void ssmax_forward(Buffer q_out, Buffer q_in, Buffer s, size_t B, size_t T_, size_t H, size_t D,
                     size_t pos0) override {
    const size_t n = B * T_ * H * D;
    typed([&]<class T>(T) {
      sp::ssmax_forward(at<T>(q_out, n, "ssmax q_out"), at<T>(q_in, n, "ssmax q_in"), at<T>(s, H, "ssmax s"), B,
                        T_, H, D, pos0);
    });
  }
  void ssmax_backward(Buffer dq_in, Buffer ds, Buffer dq_out, Buffer q_in, Buffer s, size_t B, size_t T_, size_t H,
                      size_t D) override {
    const size_t n = B * T_ * H * D;
    typed([&]<class T>(T) {
      sp::ssmax_backward(at<T>(dq_in, n, "ssmax dq_in"), at<T>(ds, H, "ssmax ds"), at<T>(dq_out, n, "ssmax dq_out"),
                         at<T>(q_in, n, "ssmax q_in"), at<T>(s, H, "ssmax s"), B, T_, H, D);
    });
  }
  void attention_forward(Buffer out, Buffer lse, Buffer q, Buffer k, Buffer v, Buffer sinks,
                         const AttentionShape& s) override {
    const size_t nq = size_t(s.B * s.Tq() * s.H * s.D), nkv = size_t(s.B * s.T * s.Hkv * s.D);
    typed([&]<class T>(T) {
      sp::attention_forward(s, at<T>(q, nq, "attention q"), at<T>(k, nkv, "attention k"),
                            at<T>(v, nkv, "attention v"), sinks ? at<T>(sinks, size_t(s.H), "sinks") : nullptr,
                            at<T>(out, nq, "attention out"), at<T>(lse, size_t(s.B * s.H * s.Tq()), "attention lse"));
    });
  }
  void attention_sink_backward(Buffer dsinks, Buffer out, Buffer dout, Buffer lse, Buffer sinks,
                               const AttentionShape& s) override {
    const size_t nq = size_t(s.B * s.T * s.H * s.D);
    typed([&]<class T>(T) {
      sp::attention_sink_backward(s, at<T>(out, nq, "attention out"), at<T>(dout, nq, "attention dout"),
                                  at<T>(lse, size_t(s.B * s.H * s.T), "lse"), at<T>(sinks, size_t(s.H), "sinks"),
                                  at<T>(dsinks, size_t(s.H), "dsinks"));
    });
  }
  void attention_backward(Buffer dq, Buffer dk, Buffer dv, Buffer q, Buffer k, Buffer v, Buffer out, Buffer dout,
                          Buffer lse, const AttentionShape& s) override {
    const size_t nq = size_t(s.B * s.T * s.H * s.D), nkv = size_t(s.B * s.T * s.Hkv * s.D);
    typed([&]<class T>(T) {
      sp::attention_backward(s, at<T>(q, nq, "attention q"), at<T>(k, nkv, "attention k"),
                             at<T>(v, nkv, "attention v"), at<T>(out, nq, "attention out"),
                             at<T>(dout, nq, "attention dout"), at<T>(lse, size_t(s.B * s.H * s.T), "lse"),
                             at<T>(dq, nq, "attention dq"), at<T>(dk, nkv, "attention dk"),
                             at<T>(dv, nkv, "attention dv"));
    });
  }
  void glu_forward(Buffer out, Buffer gate, Buffer up, size_t n, Glu act) override {
    typed([&]<class T>(T) {
      sp::glu_forward(at<T>(out, n, "glu out"), at<T>(gate, n, "gate"), at<T>(up, n, "up"), n, act);
    });
  }
  void glu_backward(Buffer dgate, Buffer dup, Buffer dout, Buffer gate, Buffer up, size_t n, Glu act) override {
    typed([&]<class T>(T) {
      sp::glu_backward(at<T>(dgate, n, "dgate"), at<T>(dup, n, "dup"), at<T>(dout, n, "glu dout"),
                       at<T>(gate, n, "gate"), at<T>(up, n, "up"), n, act);
    });
  }
  void act_quant(Buffer x, size_t N, size_t C, const ActQuantArgs& a) override {
    typed([&]<class T>(T) { sp::act_quant(at<T>(x, N * C, "act_quant x"), N, C, a); });
  }
  void lm_head_loss(Buffer loss, Buffer x, Buffer w, Buffer targets, size_t N, size_t C, size_t V, Buffer dx,
                    Buffer dw, double grad_scale) override {
    double* acc = at<double>(loss, 2, "lm_head loss");
    LossSum r;
    typed([&]<class T>(T) {
      std::vector<T>& scratch = scratch_<T>();
      scratch.resize(kLmHeadChunk * V);
      r = sp::lm_head_cross_entropy(at<T>(x, N * C, "lm_head x"), at<T>(w, V * C, "lm_head w"),
                                    at<int32_t>(targets, N, "targets"), N, C, V, scratch.data(),
                                    dx ? at<T>(dx, N * C, "lm_head dx") : nullptr,
                                    dw ? at<T>(dw, V * C, "lm_head dw") : nullptr, grad_scale);
    });
    acc[0] += r.sum;
    acc[1] += double(r.count);
  }
  void lm_head_logits(Buffer logits, Buffer x_row, Buffer w, size_t C, size_t V) override {
    typed([&]<class T>(T) {
      sp::lm_head_logits(at<T>(logits, V, "logits"), at<T>(x_row, C, "x_row"), at<T>(w, V * C, "lm_head w"), C, V);
    });
  }

  void adamw_update(Buffer master, Buffer weights, Buffer grad, Buffer m, Buffer v, const AdamWArgs& a) override {
    const size_t n = master.numel;
    typed([&]<class T>(T) {
      sp::adamw_update(at<T>(master, n, "master"), at<T>(grad, n, "grad"), at<T>(m, n, "adam m"),
                       at<T>(v, n, "adam v"), n, a);
    });
    if (weights.ptr != master.ptr) copy(weights, master);  // one dtype on the CPU: the copy is exact
  }
  void sum_squares(Buffer acc, Buffer x) override {
    double* sum = at<double>(acc, 1, "sum_squares acc");
    typed([&]<class T>(T) { *sum += sp::sum_squares(at<T>(x, x.numel, "sum_squares"), x.numel); });
  }

private:
  MemoryUse memory_;
  // Calls f with a value of the float type dt, so the generic lambdas above pick the instantiation.
  template <class F>
  static void typed_as(DType dt, F&& f) {
    SP_ASSERT(dt == DType::F32 || dt == DType::F64, "the CPU backend computes in f32 or f64, not {}",
              dtype_name(dt));
    if (dt == DType::F32) f(float{});
    else f(double{});
  }
  // The same with the compute type, the type of every float buffer an op takes
  template <class F>
  void typed(F&& f) {
    typed_as(dtype_, f);
  }
  // Transfers convert to or from the buffer's own type, which may differ from the compute type (kAccumDType).
  template <class Src>
  void convert_in(Buffer dst, std::span<const Src> src) {
    typed_as(dst.dtype, [&]<class T>(T) {
      T* d = at<T>(dst, src.size(), "upload");
      for (size_t i = 0; i < src.size(); ++i) d[i] = T(src[i]);
    });
  }
  template <class Dst>
  void convert_out(std::span<Dst> dst, Buffer src) {
    typed_as(src.dtype, [&]<class T>(T) {
      const T* s = at<T>(src, dst.size(), "download");
      for (size_t i = 0; i < dst.size(); ++i) dst[i] = Dst(s[i]);
    });
  }
  template <class T>
  std::vector<T>& scratch_() {
    if constexpr (std::is_same_v<T, float>) return scratch_f32_;
    else return scratch_f64_;
  }

  DType dtype_;
  std::vector<float> scratch_f32_;
  std::vector<double> scratch_f64_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(DType dtype, int threads) {
  return std::make_unique<CpuBackend>(dtype, threads);
}

}  // namespace sp
