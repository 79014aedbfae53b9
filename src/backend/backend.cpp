#include "backend/backend.h"

#include "backend/cuda_factory.h"
#include "core/check.h"
#include "cpu/cpu_backend.h"

namespace sp {

size_t dtype_size(DType dt) {
  switch (dt) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::BF16: return 2;
    case DType::I32: return 4;
  }
  return 0;
}

const char* dtype_name(DType dt) {
  switch (dt) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
  }
  return "?";
}

Buffer Buffer::slice(size_t offset, size_t n) const {
  SP_ASSERT(offset + n <= numel, "slice [{}, {}) of a buffer of {} elements", offset, offset + n, numel);
  return Buffer{static_cast<char*>(ptr) + offset * dtype_size(dtype), n, dtype};
}

void Backend::matmul_forward_residual(Buffer out, Buffer inp, Buffer w, Buffer residual, size_t N, size_t IC,
                                      size_t OC) {
  SP_ASSERT(out.ptr != residual.ptr, "matmul_forward_residual: out must not alias the residual");
  matmul_forward(out, inp, w, N, IC, OC);
  accumulate(out.slice(0, N * OC), residual.slice(0, N * OC));
}

std::unique_ptr<Backend> make_backend(const BackendOptions& opt) {
  if (opt.device == "cpu") return make_cpu_backend(DType::F32, opt.threads);
  if (opt.device == "cpu-f64") return make_cpu_backend(DType::F64, opt.threads);
  if (opt.device == "cuda" || opt.device == "cuda-f32") {
#ifdef SOFTPICK_HAVE_CUDA_BACKEND
    return make_cuda_backend(opt.local_rank, opt.device == "cuda" ? DType::BF16 : DType::F32, opt.deterministic);
#else
    usage_fail("training.device = \"cuda\": this softpick was built without the CUDA backend; rebuild with nvcc "
               "available (cmake -DSOFTPICK_CUDA=ON) or use training.device=cpu (--device=cpu for eval, sample, "
               "analyze and bench)");
#endif
  }
  usage_fail("unknown device \"{}\": use cpu or cuda (or cpu-f64, the double-precision reference)", opt.device);
}

}  // namespace sp
