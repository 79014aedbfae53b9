// The CUDA backend: the Backend interface over the launchers of kernels/ and cuBLAS, on one stream of one
// GPU (docs/gpu.md). Layer 3 of the kernel -> launcher -> backend layering: it checks buffer dtypes and
// sizes, picks the template instance for the buffers' dtypes and calls launchers; it never launches.
//
// Every call is enqueued on the backend's stream and returns at once, except the documented sync points.
// The same source runs over the CUDA execution harness (SOFTPICK_CUDA_EMU), whose streams are queues too.
#include "backend/cuda_factory.h"
#include "backend/peak.h"
#include "core/check.h"
#include "cuda/device_buffers.h"
#include "cuda/matmul.h"

#include "act_quant.cuh"
#include "adamw.cuh"
#include "attention.cuh"
#include "attention_decode.cuh"
#include "cross_entropy.cuh"
#include "elementwise.cuh"
#include "embedding.cuh"
#include "rmsnorm.cuh"
#include "rope.cuh"
#include "ssmax.cuh"
#include "glu.cuh"

#include <cmath>
#include <vector>

namespace sp {

namespace {

using cuda::at;
using cuda::with_float_type;

class CudaBackend final : public Backend {
public:
  CudaBackend(int device, DType precision, bool deterministic)
      : device_(device), precision_(precision), atomic_dq_(!deterministic) {
    SP_ASSERT(precision == DType::BF16 || precision == DType::F32, "the CUDA backend computes in bf16 or f32");
    CUDA_CHECK(cudaSetDevice(device));
    CUDA_CHECK(cudaGetDeviceProperties(&prop_, device));
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    blas_ = std::make_unique<cuda::Blas>(stream_);
    memory_.count(cuda::Blas::kLtWorkspaceBytes);
    peak_ = gpu_peak_bf16_flops(prop_.name);
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    blas_.reset();
    scratch_.release();
    cudaStreamDestroy(stream_);
  }

  std::string name() const override {
    return fmt::format("cuda:{}{} ({})", device_, precision_ == DType::F32 ? " f32" : "", prop_.name);
  }
  // the precision policy of docs/architecture.md: bf16 working weights and activations, fp32 for the rest
  // (precision F32, "cuda-f32": fp32 everywhere, for tests of the GPU code path without bf16 rounding)
  DType weight_dtype() const override { return precision_; }
  DType grad_dtype() const override { return DType::F32; }
  DType activation_dtype() const override { return precision_; }
  DType stat_dtype() const override { return DType::F32; }
  DType master_dtype() const override { return DType::F32; }
  double peak_flops() const override { return peak_; }
  std::string peak_description() const override {
    return fmt::format("GPU peak (dense bf16, {})", prop_.name);
  }

  // ---- memory ----
  Buffer alloc(size_t numel, DType dt) override { return memory_.alloc(numel, dt, stream_); }
  void release(Buffer b) override { memory_.release(b); }
  MemoryUse memory_use() const override { return {memory_.in_use(), memory_.peak()}; }
  void upload(Buffer dst, std::span<const float> src) override { staging_.upload(dst, src, stream_); }
  void upload(Buffer dst, std::span<const double> src) override { staging_.upload(dst, src, stream_); }
  void upload(Buffer dst, std::span<const int32_t> src) override { staging_.upload(dst, src, stream_); }
  void download(std::span<float> dst, Buffer src) override { cuda::download(dst, src, stream_); }
  void download(std::span<double> dst, Buffer src) override { cuda::download(dst, src, stream_); }
  void sync() override { CUDA_CHECK(cudaStreamSynchronize(stream_)); }
  void* native_stream() override { return stream_; }

  // ---- elementwise ----
  void fill_zero(Buffer x) override {
    CUDA_CHECK(cudaMemsetAsync(x.ptr, 0, x.numel * dtype_size(x.dtype), stream_));
  }
  void copy(Buffer dst, Buffer src) override {
    SP_ASSERT(dst.numel >= src.numel, "copy of {} elements into {}", src.numel, dst.numel);
    if (dst.dtype == src.dtype) {
      CUDA_CHECK(cudaMemcpyAsync(dst.ptr, src.ptr, src.numel * dtype_size(src.dtype), cudaMemcpyDeviceToDevice, stream_));
      return;
    }
    with_float_type(dst.dtype, [&](auto d) {
      with_float_type(src.dtype, [&](auto s) {
        using D = decltype(d);
        using S = decltype(s);
        cuda::convert_cuda<D, S>(at<D>(dst, src.numel), at<S>(src, src.numel), src.numel, stream_);
      });
    });
  }
  void accumulate(Buffer dst, Buffer src) override {
    SP_ASSERT(dst.numel == src.numel, "accumulate: {} += {} elements", dst.numel, src.numel);
    with_float_type(dst.dtype, [&](auto t) {
      using T = decltype(t);
      cuda::accumulate_cuda<T>(at<T>(dst, dst.numel), at<T>(src, src.numel), dst.numel, stream_);
    });
  }

  // ---- layers ----
  void embedding_forward(Buffer out, Buffer tokens, Buffer wte, size_t N, size_t C) override {
    with_float_type(out.dtype, [&](auto t) {
      using T = decltype(t);
      cuda::embedding_forward_cuda<T>(at<T>(out, N * C), at<int32_t>(tokens, N), at<T>(wte, C), N, C, stream_);
    });
  }
  void embedding_backward(Buffer dwte, Buffer dout, Buffer tokens, size_t N, size_t C) override {
    with_float_type(dout.dtype, [&](auto t) {
      using T = decltype(t);
      cuda::embedding_backward_cuda<T>(at<float>(dwte, C), at<T>(dout, N * C), at<int32_t>(tokens, N), N, C, stream_);
    });
  }
  void rmsnorm_forward(Buffer out, Buffer rstd, Buffer x, Buffer w, size_t N, size_t C, double eps) override {
    with_float_type(x.dtype, [&](auto t) {
      using T = decltype(t);
      cuda::rmsnorm_forward_cuda<T>(at<T>(out, N * C), at<float>(rstd, N), at<T>(x, N * C), at<T>(w, C), N, C,
                                    float(eps), stream_);
    });
  }

  void rmsnorm_backward(Buffer dx, Buffer dw, Buffer dout, Buffer x, Buffer w, Buffer rstd, size_t N,
                        size_t C) override {
    with_float_type(x.dtype, [&](auto t) {
      using T = decltype(t);
      void* scratch = scratch_.get(cuda::rmsnorm_backward_scratch_bytes(N, C), stream_);
      cuda::rmsnorm_backward_cuda<T>(at<T>(dx, N * C), at<float>(dw, C), at<T>(dout, N * C), at<T>(x, N * C),
                                     at<T>(w, C), at<float>(rstd, N), N, C, scratch, stream_);
    });
  }
  void matmul_forward(Buffer out, Buffer inp, Buffer w, size_t N, size_t IC, size_t OC) override {
    blas_->forward(out, inp, w, N, IC, OC);
  }
  void matmul_backward(Buffer dinp, Buffer dw, Buffer dout, Buffer inp, Buffer w, size_t N, size_t IC, size_t OC,
                       bool accumulate_dinp) override {
    blas_->backward(dinp, dw, dout, inp, w, N, IC, OC, accumulate_dinp);
  }
  void matmul_forward_residual(Buffer out, Buffer inp, Buffer w, Buffer residual, size_t N, size_t IC,
                               size_t OC) override {
    blas_->forward_residual(out, inp, w, residual, N, IC, OC);
  }
  void rope_forward(Buffer x, size_t B, size_t T, size_t Hx, size_t D, double theta, size_t pos0) override {
    rope(x, B, T, Hx, D, theta, pos0, /*inverse=*/false);
  }
  void rope_backward(Buffer dx, size_t B, size_t T, size_t Hx, size_t D, double theta) override {
    rope(dx, B, T, Hx, D, theta, 0, /*inverse=*/true);
  }
  void ssmax_forward(Buffer q_out, Buffer q_in, Buffer s, size_t B, size_t T, size_t H, size_t D,
                     size_t pos0) override {
    with_float_type(q_in.dtype, [&](auto t) {
      using T_ = decltype(t);
      const size_t n = B * T * H * D;
      cuda::ssmax_forward_cuda<T_>(at<T_>(q_out, n), at<T_>(q_in, n), at<T_>(s, H), B, T, H, D, pos0, stream_);
    });
  }
  void ssmax_backward(Buffer dq_in, Buffer ds, Buffer dq_out, Buffer q_in, Buffer s, size_t B, size_t T, size_t H,
                      size_t D) override {
    with_float_type(q_in.dtype, [&](auto t) {
      using T_ = decltype(t);
      const size_t n = B * T * H * D;
      void* scratch = scratch_.get(cuda::ssmax_backward_scratch_bytes(B, T, H), stream_);
      cuda::ssmax_backward_cuda<T_>(at<T_>(dq_in, n), at<float>(ds, H), at<T_>(dq_out, n), at<T_>(q_in, n),
                                    at<T_>(s, H), B, T, H, D, scratch, stream_);
    });
  }
  void attention_forward(Buffer out, Buffer lse, Buffer q, Buffer k, Buffer v, Buffer sinks,
                         const AttentionShape& s) override {
    const cuda::AttentionArgs a = args(s);
    const size_t nq = size_t(a.B * a.Tq * a.H * a.D), nk = size_t(a.B * a.Tk * a.Hkv * a.D);
    with_float_type(q.dtype, [&](auto t) {
      using T = decltype(t);
      float* l = at<float>(lse, size_t(a.B * a.H * a.Tq));
      const T* sk = sinks ? at<T>(sinks, size_t(a.H)) : nullptr;
      if (cuda::attention_decode_applies(a)) {  // a few rows over a long cache: split the keys
        void* scratch = scratch_.get(cuda::attention_decode_scratch_bytes(a), stream_);
        return cuda::attention_decode_cuda<T>(a, at<T>(q, nq), at<T>(k, nk), at<T>(v, nk), sk, at<T>(out, nq), l,
                                              scratch, stream_);
      }
      cuda::attention_forward_cuda<T>(a, at<T>(q, nq), at<T>(k, nk), at<T>(v, nk), sk, at<T>(out, nq), l, stream_);
    });
  }
  void attention_sink_backward(Buffer dsinks, Buffer out, Buffer dout, Buffer lse, Buffer sinks,
                               const AttentionShape& s) override {
    const cuda::AttentionArgs a = args(s);
    const size_t nq = size_t(s.B * s.T * s.H * s.D);
    with_float_type(out.dtype, [&](auto t) {
      using T = decltype(t);
      void* scratch = scratch_.get(cuda::attention_sink_backward_scratch_bytes(a), stream_);
      cuda::attention_sink_backward_cuda<T>(a, at<T>(out, nq), at<T>(dout, nq), at<float>(lse, size_t(s.B * s.H * s.T)),
                                            at<T>(sinks, size_t(s.H)), at<float>(dsinks, size_t(s.H)), scratch, stream_);
    });
  }
  void attention_backward(Buffer dq, Buffer dk, Buffer dv, Buffer q, Buffer k, Buffer v, Buffer out, Buffer dout,
                          Buffer lse, const AttentionShape& s) override {
    SP_ASSERT(s.q_offset == 0, "attention with a query offset ({}) runs forward only", s.q_offset);
    const cuda::AttentionArgs a = args(s);
    const size_t nq = size_t(s.B * s.T * s.H * s.D), nk = size_t(s.B * s.T * s.Hkv * s.D);
    with_float_type(q.dtype, [&](auto t) {
      using T = decltype(t);
      void* scratch = scratch_.get(cuda::attention_backward_scratch_bytes(a), stream_);
      cuda::attention_backward_cuda<T>(a, at<T>(q, nq), at<T>(k, nk), at<T>(v, nk), at<T>(out, nq), at<T>(dout, nq),
                                       at<float>(lse, size_t(s.B * s.H * s.T)), at<T>(dq, nq), at<T>(dk, nk),
                                       at<T>(dv, nk), scratch, stream_);
    });
  }
  void glu_forward(Buffer out, Buffer gate, Buffer up, size_t n, Glu act) override {
    with_float_type(gate.dtype, [&](auto t) {
      using T = decltype(t);
      cuda::glu_forward_cuda<T>(at<T>(out, n), at<T>(gate, n), at<T>(up, n), n, act, stream_);
    });
  }
  void glu_backward(Buffer dgate, Buffer dup, Buffer dout, Buffer gate, Buffer up, size_t n, Glu act) override {
    with_float_type(gate.dtype, [&](auto t) {
      using T = decltype(t);
      cuda::glu_backward_cuda<T>(at<T>(dgate, n), at<T>(dup, n), at<T>(dout, n), at<T>(gate, n), at<T>(up, n), n, act,
                                 stream_);
    });
  }
  void act_quant(Buffer x, size_t N, size_t C, const ActQuantArgs& a) override {
    with_float_type(x.dtype, [&](auto t) {
      using T = decltype(t);
      void* scratch = scratch_.get(cuda::act_quant_scratch_bytes(N, C), stream_);
      cuda::act_quant_cuda<T>(at<T>(x, N * C), N, C, a, scratch, stream_);
    });
  }
  void lm_head_loss(Buffer loss, Buffer x, Buffer w, Buffer targets, size_t N, size_t C, size_t V, Buffer dx,
                    Buffer dw, double grad_scale) override;
  void lm_head_logits(Buffer logits, Buffer x_row, Buffer w, size_t C, size_t V) override {
    blas_->forward(logits, x_row, w, 1, C, V);
  }

  // ---- optimizer ----
  void adamw_update(Buffer master, Buffer weights, Buffer grad, Buffer m, Buffer v, const AdamWArgs& a) override {
    const size_t n = master.numel;
    SP_ASSERT(weights.numel == n && grad.numel == n && m.numel == n && v.numel == n, "adamw_update sizes");
    auto update = [&](auto* w) {  // w: the working copy to write, or null when it is the master itself
      cuda::adamw_cuda(at<float>(master, n), w, at<float>(grad, n), at<float>(m, n), at<float>(v, n), n,
                       cuda::adamw_step(a), stream_);
    };
    if (weights.ptr == master.ptr) return update(static_cast<float*>(nullptr));
    with_float_type(weights.dtype, [&](auto t) { update(at<decltype(t)>(weights, n)); });
  }
  void sum_squares(Buffer acc, Buffer x) override {
    void* scratch = scratch_.get(cuda::sum_squares_scratch_bytes(x.numel), stream_);
    cuda::sum_squares_cuda(at<double>(acc, 1), at<float>(x, x.numel), x.numel, scratch, stream_);
  }

private:
  cuda::AttentionArgs args(const AttentionShape& s) const {
    return cuda::AttentionArgs{s.B, s.Tq(), s.T, s.H, s.Hkv, s.D, s.q_offset, s.norm, float(s.softpick_eps), atomic_dq_};
  }
  void rope(Buffer x, size_t B, size_t T, size_t Hx, size_t D, double theta, size_t pos0, bool inverse) {
    with_float_type(x.dtype, [&](auto t) {
      using T_ = decltype(t);
      T_* p = at<T_>(x, B * T * Hx * D);
      if (inverse) cuda::rope_backward_cuda<T_>(p, B, T, Hx, D, theta, pos0, stream_);
      else cuda::rope_forward_cuda<T_>(p, B, T, Hx, D, theta, pos0, stream_);
    });
  }

  int device_;
  DType precision_;
  bool atomic_dq_;  // the attention backward's dq by atomics (BackendOptions::deterministic = false)
  cudaDeviceProp prop_{};
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::Blas> blas_;
  cuda::DeviceMemory memory_;
  cuda::Scratch scratch_{memory_};
  cuda::HostStaging staging_;
  double peak_ = 0;
};

// In chunks of rows: logits (rows, V) fp32 = x w^T, then per row the loss and, with gradients, dlogits in
// place; dx = dlogits w and dw += dlogits^T x take bf16 operands, so dlogits is rounded once for them.
void CudaBackend::lm_head_loss(Buffer loss, Buffer x, Buffer w, Buffer targets, size_t N, size_t C, size_t V,
                               Buffer dx, Buffer dw, double grad_scale) {
  const bool with_grad = bool(dx);
  const size_t rows = std::min(N, cuda::kLmHeadChunkRows);
  float* row_loss = at<float>(scratch_.buffer(2 * N, DType::F32, stream_, /*slot=*/1), 2 * N);  // (N) loss, (N) valid
  Buffer logits = scratch_.buffer(rows * V, DType::F32, stream_, /*slot=*/2);
  for (size_t r0 = 0; r0 < N; r0 += rows) {
    const size_t n = std::min(rows, N - r0);
    const Buffer xr = x.slice(r0 * C, n * C);
    blas_->forward(logits, xr, w, n, C, V);
    cuda::cross_entropy_cuda(at<float>(logits, n * V), row_loss + r0, row_loss + N + r0, at<int32_t>(targets, N) + r0,
                             n, V, float(grad_scale), with_grad, stream_);
    if (!with_grad) continue;
    Buffer dlogits = logits.slice(0, n * V);
    if (x.dtype != DType::F32) {
      Buffer low = scratch_.buffer(rows * V, x.dtype, stream_, /*slot=*/3).slice(0, n * V);
      copy(low, dlogits);
      dlogits = low;
    }
    blas_->backward(dx.slice(r0 * C, n * C), dw, dlogits, xr, w, n, C, V, /*accumulate_dinp=*/false);
  }
  // loss (2) += [sum of the row losses, rows with a target], each summed in a fixed order
  void* scratch = scratch_.get(cuda::sum_squares_scratch_bytes(N), stream_);
  double* acc = at<double>(loss, 2);
  cuda::sum_cuda(acc, row_loss, N, scratch, stream_);
  cuda::sum_cuda(acc + 1, row_loss + N, N, scratch, stream_);
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device_ordinal, DType precision, bool deterministic) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    (void)cudaGetLastError();
    usage_fail("training.device = \"cuda\": no CUDA device is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES), "
               "or use training.device=cpu");
  }
  return std::make_unique<CudaBackend>(device_ordinal % devices, precision, deterministic);
}

}  // namespace sp
