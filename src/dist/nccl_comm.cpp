// The NCCL communicator (device buffers). Compiled where the CUDA toolkit and NCCL were found; the CUDA
// backend uses it. Collectives run on the communicator's own stream: each first waits (an event) for the
// backend's work issued so far; join() makes the backend's stream wait for them; watch() polls them from the
// host with a timeout, so a dead peer ends the job with a message instead of a hang. The blocking calls are
// the async ones followed by join() and watch(). docs/distributed.md, "Overlap".
#include "core/check.h"
#include "dist/comm.h"

#include <chrono>
#include <thread>

namespace sp {

#ifdef SOFTPICK_HAVE_CUDA

namespace {

// A call on a non-blocking communicator may return ncclInProgress; anything else but success is an error.
void check_async(ncclResult_t r, const char* expr, const char* file, int line) {
  if (r != ncclSuccess && r != ncclInProgress) check_failed("NCCL", expr, file, line, ncclGetErrorString(r));
}
#define NCCL_CHECK_ASYNC(expr) check_async((expr), #expr, __FILE__, __LINE__)

class NcclCommunicator final : public Communicator {
public:
  NcclCommunicator(std::unique_ptr<Communicator> bootstrap, cudaStream_t compute, double timeout_s)
      : boot_(std::move(bootstrap)), compute_(compute), timeout_s_(timeout_s) {
    int devices = 0;
    CUDA_CHECK(cudaGetDeviceCount(&devices));
    if (devices == 0) fail("rank {}: no CUDA device visible", boot_->rank());
    CUDA_CHECK(cudaSetDevice(boot_->local_rank() % devices));
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&compute_done_, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&comm_done_, cudaEventDisableTiming));
    ncclUniqueId id{};
    if (boot_->rank() == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    static_assert(sizeof(id) % 4 == 0, "ncclUniqueId travels as int32 words");
    boot_->broadcast(Buffer{&id, sizeof(id) / 4, DType::I32}, 0);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;  // non-blocking: initialisation and collectives can be abandoned on a timeout
    NCCL_CHECK_ASYNC(ncclCommInitRankConfig(&comm_, boot_->size(), id, boot_->rank(), &config));
    wait_ready("ncclCommInitRankConfig");
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
    cudaEventDestroy(compute_done_);
    cudaEventDestroy(comm_done_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "nccl"; }
  int rank() const override { return boot_->rank(); }
  int size() const override { return boot_->size(); }
  int local_rank() const override { return boot_->local_rank(); }
  int local_size() const override { return boot_->local_size(); }

  void all_reduce(Buffer x, ReduceOp op) override {
    all_reduce_async(x, op);
    complete("all_reduce");
  }
  void reduce(Buffer send, Buffer recv, int root, ReduceOp op) override {
    reduce_async(send, recv, root, op);
    complete("reduce");
  }
  void all_gather(Buffer x) override {
    all_gather_async(x);
    complete("all_gather");
  }
  void broadcast(Buffer x, int root) override {
    after_compute();
    NCCL_CHECK_ASYNC(ncclBroadcast(x.ptr, x.ptr, x.numel, type(x), root, comm_, stream_));
    complete("broadcast");
  }
  void barrier() override { boot_->barrier(); }
  void all_reduce_host(std::vector<double>& v, ReduceOp op) override { boot_->all_reduce_host(v, op); }
  std::vector<std::string> all_gather_string(const std::string& s) override { return boot_->all_gather_string(s); }

  void all_reduce_async(Buffer x, ReduceOp op) override {
    after_compute();
    NCCL_CHECK_ASYNC(ncclAllReduce(x.ptr, x.ptr, x.numel, type(x), nccl_op(op), comm_, stream_));
  }
  void reduce_async(Buffer send, Buffer recv, int root, ReduceOp op) override {
    SP_ASSERT(send.numel == recv.numel && send.dtype == recv.dtype, "reduce sizes");
    after_compute();
    void* to = rank() == root ? recv.ptr : send.ptr;  // read only at the root
    NCCL_CHECK_ASYNC(ncclReduce(send.ptr, to, send.numel, type(send), nccl_op(op), root, comm_, stream_));
  }
  void all_gather_async(Buffer x) override {
    const size_t n = x.numel / size_t(size());
    after_compute();
    // in place: this rank's block already sits at offset rank * n
    NCCL_CHECK_ASYNC(ncclAllGather(x.slice(size_t(rank()) * n, n).ptr, x.ptr, n, type(x), comm_, stream_));
  }
  void join() override {
    CUDA_CHECK(cudaEventRecord(comm_done_, stream_));
    CUDA_CHECK(cudaStreamWaitEvent(compute_, comm_done_, 0));
  }
  void watch() override { wait_stream("collective"); }

private:
  // The next collective waits for the backend's work issued so far (the data it reduces).
  void after_compute() {
    CUDA_CHECK(cudaEventRecord(compute_done_, compute_));
    CUDA_CHECK(cudaStreamWaitEvent(stream_, compute_done_, 0));
  }
  void complete(const char* what) {
    join();
    wait_stream(what);
  }

  static ncclDataType_t type(Buffer x) {
    switch (x.dtype) {
      case DType::F32: return ncclFloat32;
      case DType::F64: return ncclFloat64;
      case DType::BF16: return ncclBfloat16;
      case DType::I32: return ncclInt32;
    }
    return ncclFloat32;
  }
  static ncclRedOp_t nccl_op(ReduceOp op) {
    switch (op) {
      case ReduceOp::Sum: return ncclSum;
      case ReduceOp::Avg: return ncclAvg;
      case ReduceOp::Max: return ncclMax;
    }
    return ncclSum;
  }

  void give_up(const char* what) {
    ncclCommAbort(comm_);
    comm_ = nullptr;
    fail("rank {}: NCCL {} did not complete within {} s (a peer died or hangs); the job is aborted", rank(), what,
         timeout_s_);
  }
  void wait_ready(const char* what) {
    const auto start = std::chrono::steady_clock::now();
    ncclResult_t state = ncclInProgress;
    while (state == ncclInProgress) {
      NCCL_CHECK_ASYNC(ncclCommGetAsyncError(comm_, &state));
      if (state != ncclInProgress && state != ncclSuccess)
        fail("rank {}: NCCL {} failed: {}", rank(), what, ncclGetErrorString(state));
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > timeout_s_) give_up(what);
      if (state == ncclInProgress) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  // Polls the communicator's stream and error state until its collectives are done or the time is up.
  void wait_stream(const char* what) {
    wait_ready(what);
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      cudaError_t q = cudaStreamQuery(stream_);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) CUDA_CHECK(q);
      ncclResult_t state = ncclSuccess;
      NCCL_CHECK_ASYNC(ncclCommGetAsyncError(comm_, &state));
      if (state != ncclSuccess && state != ncclInProgress)
        fail("rank {}: NCCL {} failed: {}", rank(), what, ncclGetErrorString(state));
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > timeout_s_) give_up(what);
      std::this_thread::yield();
    }
  }
#undef NCCL_CHECK_ASYNC

  std::unique_ptr<Communicator> boot_;
  cudaStream_t compute_;             // the backend's stream
  cudaStream_t stream_ = nullptr;    // the collectives'
  cudaEvent_t compute_done_ = nullptr, comm_done_ = nullptr;  // the two directions of ordering
  double timeout_s_;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> bootstrap, void* stream,
                                                     double timeout_s) {
  return std::make_unique<NcclCommunicator>(std::move(bootstrap), static_cast<cudaStream_t>(stream), timeout_s);
}

#else

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator>, void*, double) {
  fail("this build has no CUDA/NCCL support: rebuild on a machine with the CUDA toolkit and NCCL, or use "
       "distributed.backend = mpi");
}

#endif

std::unique_ptr<Communicator> communicator_for(std::unique_ptr<Communicator> launcher, const std::string& choice,
                                               Backend& backend) {
  const bool gpu = backend.native_stream() != nullptr;
  if (choice == "nccl" && !gpu)
    usage_fail("distributed.backend = \"nccl\" needs training.device = cuda; use auto or mpi on the CPU");
  if (choice == "mpi" && gpu && launcher->size() > 1)
    usage_fail("distributed.backend = \"mpi\" cannot reduce GPU buffers; use auto or nccl with training.device = cuda");
  if (!gpu || launcher->size() == 1) return launcher;
  constexpr double kCollectiveTimeoutS = 600;  // a peer that died or hangs ends the job after this long
  return make_nccl_communicator(std::move(launcher), backend.native_stream(), kCollectiveTimeoutS);
}

}  // namespace sp
