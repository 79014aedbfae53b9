#include "backend/backend.h"

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

std::unique_ptr<Backend> make_backend(const std::string& kind, int threads) {
  if (kind == "cpu") return make_cpu_backend(DType::F32, threads);
  if (kind == "cpu-f64") return make_cpu_backend(DType::F64, threads);
  usage_fail("unknown backend \"{}\": use cpu (or cpu-f64 for the double-precision reference)", kind);
}

}  // namespace sp
