// The backend interface: every operation the model needs, on backend-owned buffers.
//
// The model (src/model/model.cpp) is written once against this interface; a backend implements it.
// The CPU backend (src/cpu/) is the fp32 reference, and runs in fp64 for gradient checks; the CUDA backend
// implements the same calls with kernels from kernels/. make_backend() below is the one place that picks
// a backend (training.device, or --device for the commands that load a checkpoint).
//
// Conventions
//   * Buffers know their dtype, and each kind of buffer has its own (the precision policy of
//     docs/architecture.md): weight_dtype() for the working copy of the weights that the layers read,
//     grad_dtype() for parameter gradients, activation_dtype() for activations and their gradients,
//     stat_dtype() for per-row statistics (RMSNorm rstd, attention lse), master_dtype() for the optimizer's
//     master weights and AdamW moments. On the CPU they all coincide (f32, or f64 for gradient checks); the
//     CUDA backend reads bf16 weights and activations. Token and target buffers are I32.
//   * Calls may run asynchronously (the CUDA backend enqueues them, in call order, on one stream). The
//     sync points are download() and sync(); upload() returns once its host data may be reused, without
//     waiting for the device (the CUDA backend stages it in pinned memory, cuda::HostStaging). Results the host needs once per step (the loss, the gradient norm) accumulate in
//     small device buffers of kAccumDType that the caller reads after its loop.
//   * One stream per backend, exposed only for the NCCL communicator (native_stream()), which runs its
//     collectives on a stream of its own, ordered against this one with events (the gradient reduction
//     overlapping the backward pass, src/dist/comm.h).
//   * Shapes and the forward/backward conventions (which gradients overwrite, which accumulate) are those of
//     the CPU reference headers named next to each group; the backend checks sizes.
#pragma once

#include "backend/op_args.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace sp {

enum class DType { F32, F64, BF16, I32 };

size_t dtype_size(DType dt);
const char* dtype_name(DType dt);

// The dtype of accumulators (loss sums and counts, sums of squares) on every backend: a few scalars, so
// f64 costs nothing, keeps counts exact past 2^24 rows and the CPU's double sums bit for bit.
constexpr DType kAccumDType = DType::F64;

// A view of backend-owned memory: pointer, element count, dtype. Copying a Buffer does not copy memory.
struct Buffer {
  void* ptr = nullptr;
  size_t numel = 0;
  DType dtype = DType::F32;

  Buffer slice(size_t offset, size_t n) const;  // elements [offset, offset + n)
  explicit operator bool() const { return ptr != nullptr; }
};

class Backend {
public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // cpu: all f32; cpu-f64: all f64; cuda: bf16 weights and activations, f32 for the rest; cuda-f32: all f32
  virtual DType weight_dtype() const = 0;      // the working copy of the weights, read by the layers
  virtual DType grad_dtype() const = 0;        // parameter gradients
  virtual DType activation_dtype() const = 0;  // activations and their gradients
  virtual DType stat_dtype() const = 0;        // per-row statistics: RMSNorm rstd, attention lse
  virtual DType master_dtype() const = 0;      // the optimizer's master weights and AdamW moments

  // ---- the peak MFU is measured against: src/backend/peak.h ----
  virtual double peak_flops() const = 0;             // FLOP/s; 0 when unknown (MFU is then n/a)
  virtual std::string peak_description() const = 0;  // "CPU peak (measured fp32 GEMM)", for logs

  // ---- memory ----
  virtual Buffer alloc(size_t numel, DType dt) = 0;  // zero-filled
  virtual void release(Buffer b) = 0;
  // Bytes the backend holds for buffers (and, on a GPU, its scratch), now and at most so far: what
  // `softpick config` predicts per rank (src/dist/memory.h).
  struct MemoryUse {
    size_t in_use = 0, peak = 0;
  };
  virtual MemoryUse memory_use() const = 0;
  virtual void upload(Buffer dst, std::span<const float> src) = 0;  // converts to dst's dtype
  virtual void upload(Buffer dst, std::span<const double> src) = 0;
  virtual void upload(Buffer dst, std::span<const int32_t> src) = 0;
  virtual void download(std::span<float> dst, Buffer src) = 0;
  virtual void download(std::span<double> dst, Buffer src) = 0;
  virtual void sync() = 0;
  // The stream the backend enqueues on (a cudaStream_t), for the NCCL communicator; null on the CPU.
  virtual void* native_stream() { return nullptr; }

  // ---- elementwise (residual stream) ----
  virtual void fill_zero(Buffer x) = 0;
  virtual void copy(Buffer dst, Buffer src) = 0;
  virtual void accumulate(Buffer dst, Buffer src) = 0;  // dst += src

  // ---- layers: src/cpu/{embedding,rmsnorm,matmul,rope,ssmax,attention,glu,act_quant,lm_head}.h ----
  virtual void embedding_forward(Buffer out, Buffer tokens, Buffer wte, size_t N, size_t C) = 0;
  virtual void embedding_backward(Buffer dwte, Buffer dout, Buffer tokens, size_t N, size_t C) = 0;
  virtual void rmsnorm_forward(Buffer out, Buffer rstd, Buffer x, Buffer w, size_t N, size_t C, double eps) = 0;
  virtual void rmsnorm_backward(Buffer dx, Buffer dw, Buffer dout, Buffer x, Buffer w, Buffer rstd, size_t N,
                                size_t C) = 0;
  virtual void matmul_forward(Buffer out, Buffer inp, Buffer w, size_t N, size_t IC, size_t OC) = 0;
  // out (N, OC) = residual (N, OC) + inp w^T, out a buffer of its own: a block's projection back into the
  // residual stream. The add is the product's epilogue where a backend has one (CUDA: cuBLASLt, one
  // rounding of the fp32 sum); the composition of matmul_forward and accumulate otherwise.
  virtual void matmul_forward_residual(Buffer out, Buffer inp, Buffer w, Buffer residual, size_t N, size_t IC,
                                       size_t OC);
  virtual void matmul_backward(Buffer dinp, Buffer dw, Buffer dout, Buffer inp, Buffer w, size_t N, size_t IC,
                               size_t OC, bool accumulate_dinp) = 0;
  // rope_forward and ssmax_forward take the position of row 0 (0 in training; the decoder's first new row).
  virtual void rope_forward(Buffer x, size_t B, size_t T, size_t Hx, size_t D, double theta, size_t pos0) = 0;
  virtual void rope_backward(Buffer dx, size_t B, size_t T, size_t Hx, size_t D, double theta) = 0;
  virtual void ssmax_forward(Buffer q_out, Buffer q_in, Buffer s, size_t B, size_t T, size_t H, size_t D,
                             size_t pos0) = 0;
  virtual void ssmax_backward(Buffer dq_in, Buffer ds, Buffer dq_out, Buffer q_in, Buffer s, size_t B, size_t T,
                              size_t H, size_t D) = 0;
  // With s.q_offset > 0 (forward only) the queries are the last s.Tq() rows of each sequence (op_args.h).
  // sinks (H): the sink logits for s.norm = Sink (weight dtype), an empty Buffer otherwise.
  virtual void attention_forward(Buffer out, Buffer lse, Buffer q, Buffer k, Buffer v, Buffer sinks,
                                 const AttentionShape& s) = 0;
  virtual void attention_backward(Buffer dq, Buffer dk, Buffer dv, Buffer q, Buffer k, Buffer v, Buffer out,
                                  Buffer dout, Buffer lse, const AttentionShape& s) = 0;
  // Sink only: dsinks (H, grad dtype) += -sum over (b, t) of exp(sinks[h] - lse) rowsum(out * dout).
  virtual void attention_sink_backward(Buffer dsinks, Buffer out, Buffer dout, Buffer lse, Buffer sinks,
                                       const AttentionShape& s) = 0;
  // out = act(gate) * up (Glu in op_args.h): the MLP's SwiGLU (Swish) and the attention output gate (Sigmoid).
  virtual void glu_forward(Buffer out, Buffer gate, Buffer up, size_t n, Glu act) = 0;
  virtual void glu_backward(Buffer dgate, Buffer dup, Buffer dout, Buffer gate, Buffer up, size_t n, Glu act) = 0;
  // x (N, C) fake-quantized in place (ActQuantArgs in op_args.h; src/cpu/act_quant.h): evaluation only.
  virtual void act_quant(Buffer x, size_t N, size_t C, const ActQuantArgs& a) = 0;
  // Fused LM head + cross-entropy; adds [sum of nats, count of rows with a target] to loss (2, kAccumDType).
  // dx and dw may be empty Buffers for evaluation.
  virtual void lm_head_loss(Buffer loss, Buffer x, Buffer w, Buffer targets, size_t N, size_t C, size_t V,
                            Buffer dx, Buffer dw, double grad_scale) = 0;
  virtual void lm_head_logits(Buffer logits, Buffer x_row, Buffer w, size_t C, size_t V) = 0;

  // ---- optimizer: src/cpu/adamw.h ----
  // Updates master and the moments m, v (master_dtype) from grad and writes the working copy `weights`,
  // converted to its dtype; when weights aliases master (the dtypes agree) the update is in place.
  virtual void adamw_update(Buffer master, Buffer weights, Buffer grad, Buffer m, Buffer v,
                            const AdamWArgs& a) = 0;
  virtual void sum_squares(Buffer acc, Buffer x) = 0;  // acc (1, kAccumDType) += sum of x^2
};

struct BackendOptions {
  // training.device ("cpu", "cuda"), or for tests "cpu-f64" (the fp64 reference) and "cuda-f32" (the CUDA
  // backend with fp32 weights and activations: the GPU code path without bf16 rounding)
  std::string device = "cpu";
  int threads = 0;             // CPU threads; <= 0 keeps the OpenMP default (all cores)
  int local_rank = 0;          // the process's rank within its node: the GPU a CUDA backend uses
  // training.attention_backward: true = "deterministic" (every backend's only mode on the CPU); false =
  // "atomic", where the CUDA bf16 attention backward adds dq with fp32 atomics (kernels/attention.cuh)
  bool deterministic = true;
};

// The one backend factory. "cuda" needs the CUDA backend compiled in (src/backend/cuda_factory.h); in a
// build without it, and for any unknown device, a usage Error says what to do.
std::unique_ptr<Backend> make_backend(const BackendOptions& opt);

}  // namespace sp
