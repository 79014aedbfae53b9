// The one place where errors are defined and reported.
//
// Two kinds of failure:
//   * Error: bad input the user can fix (config, command line, data shard, checkpoint, disk). Thrown as an
//     exception carrying one message that names the file, key or offset and what to do; main() prints it
//     and exits with its code (2 for usage and config errors, 1 for everything else).
//   * Precondition / library failure: a bug or a broken runtime. SP_ASSERT, CUDA_CHECK, CUBLAS_CHECK,
//     NCCL_CHECK and MPI_CHECK all report expression, file and line through check_failed() and abort.
#pragma once

#include <spdlog/fmt/fmt.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace sp {

enum class ExitCode : int { Ok = 0, Failure = 1, Usage = 2 };

class Error : public std::runtime_error {
public:
  explicit Error(std::string message, ExitCode code = ExitCode::Failure)
      : std::runtime_error(std::move(message)), code_(code) {}
  ExitCode code() const { return code_; }

private:
  ExitCode code_;
};

// Throws an Error with a formatted message; `fail` for data/IO problems, `usage_fail` for config/CLI ones.
template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...), ExitCode::Failure);
}
template <class... Args>
[[noreturn]] void usage_fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...), ExitCode::Usage);
}

// Prints "<what> failed: <expr> at <file>:<line>: <detail>" and aborts.
[[noreturn]] void check_failed(const char* what, const char* expr, const char* file, int line,
                               const std::string& detail);

}  // namespace sp

#define SP_ASSERT(cond, ...)                                                                    \
  do {                                                                                          \
    if (!(cond)) ::sp::check_failed("precondition", #cond, __FILE__, __LINE__,                 \
                                    fmt::format(__VA_ARGS__));                                  \
  } while (0)

#define MPI_CHECK(expr)                                                                         \
  do {                                                                                          \
    int sp_mpi_rc_ = (expr);                                                                    \
    if (sp_mpi_rc_ != 0 /* MPI_SUCCESS */)                                                      \
      ::sp::check_failed("MPI", #expr, __FILE__, __LINE__, fmt::format("code {}", sp_mpi_rc_)); \
  } while (0)

#if defined(SOFTPICK_HAVE_CUDA) || defined(__CUDACC__)
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nccl.h>

#define CUDA_CHECK(expr)                                                                        \
  do {                                                                                          \
    cudaError_t sp_cuda_rc_ = (expr);                                                           \
    if (sp_cuda_rc_ != cudaSuccess)                                                             \
      ::sp::check_failed("CUDA", #expr, __FILE__, __LINE__, cudaGetErrorString(sp_cuda_rc_));   \
  } while (0)

#define CUBLAS_CHECK(expr)                                                                      \
  do {                                                                                          \
    cublasStatus_t sp_cublas_rc_ = (expr);                                                      \
    if (sp_cublas_rc_ != CUBLAS_STATUS_SUCCESS)                                                 \
      ::sp::check_failed("cuBLAS", #expr, __FILE__, __LINE__,                                  \
                         cublasGetStatusString(sp_cublas_rc_));                                 \
  } while (0)

#define NCCL_CHECK(expr)                                                                        \
  do {                                                                                          \
    ncclResult_t sp_nccl_rc_ = (expr);                                                          \
    if (sp_nccl_rc_ != ncclSuccess)                                                             \
      ::sp::check_failed("NCCL", #expr, __FILE__, __LINE__, ncclGetErrorString(sp_nccl_rc_));   \
  } while (0)
#endif
