// The "single" and "mpi" communicators (the second where MPI was found at build time).
#include "core/bf16.h"
#include "core/check.h"
#include "dist/comm.h"

#ifdef SOFTPICK_HAVE_MPI
#include <mpi.h>
#endif

#include <cstdlib>
#include <cstring>
#include <exception>

namespace sp {

namespace {

class SingleCommunicator final : public Communicator {
public:
  std::string name() const override { return "single"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  void all_reduce(Buffer, ReduceOp) override {}
  void reduce(Buffer send, Buffer recv, int, ReduceOp) override {
    SP_ASSERT(send.numel == recv.numel && send.dtype == recv.dtype, "reduce: {} -> {}", send.numel, recv.numel);
    if (send.ptr != recv.ptr) std::memcpy(recv.ptr, send.ptr, send.numel * dtype_size(send.dtype));
  }
  void all_gather(Buffer) override {}
  void broadcast(Buffer, int) override {}
  void barrier() override {}
  void all_reduce_host(std::vector<double>&, ReduceOp) override {}
  std::vector<std::string> all_gather_string(const std::string& s) override { return {s}; }
};

#ifdef SOFTPICK_HAVE_MPI

// bf16 has no MPI type: it travels as 2-byte elements and is summed by a user operation in fp32.
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  auto* a = static_cast<uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = float_to_bf16(bf16_to_float(a[i]) + bf16_to_float(b[i]));
}
void bf16_max(void* in, void* inout, int* len, MPI_Datatype*) {
  auto* a = static_cast<uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = bf16_to_float(a[i]) > bf16_to_float(b[i]) ? a[i] : b[i];
}

class MpiCommunicator final : public Communicator {
public:
  MpiCommunicator() {
    int initialized = 0;
    MPI_CHECK(MPI_Initialized(&initialized));
    if (!initialized) {
      int provided = 0;
      MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
    }
    // errors in collectives return codes (reported by MPI_CHECK) instead of aborting silently
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
    MPI_Comm local;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local));
    MPI_CHECK(MPI_Comm_rank(local, &local_rank_));
    MPI_CHECK(MPI_Comm_size(local, &local_size_));
    MPI_CHECK(MPI_Comm_free(&local));
    MPI_CHECK(MPI_Type_contiguous(2, MPI_BYTE, &bf16_type_));
    MPI_CHECK(MPI_Type_commit(&bf16_type_));
    MPI_CHECK(MPI_Op_create(bf16_sum, /*commute=*/1, &bf16_sum_));
    MPI_CHECK(MPI_Op_create(bf16_max, /*commute=*/1, &bf16_max_));
  }
  ~MpiCommunicator() override {
    // unwinding an error: leave MPI to abort_job(), a finalize would wait for the other ranks forever
    if (std::uncaught_exceptions() > 0) return;
    MPI_Op_free(&bf16_sum_);
    MPI_Op_free(&bf16_max_);
    MPI_Type_free(&bf16_type_);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }

  std::string name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }

  void all_reduce(Buffer x, ReduceOp op) override {
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, x.ptr, count(x), type(x), mpi_op(x, op), MPI_COMM_WORLD));
    if (op == ReduceOp::Avg) scale(x, 1.0 / size_);
  }
  void reduce(Buffer send, Buffer recv, int root, ReduceOp op) override {
    SP_ASSERT(send.dtype == recv.dtype && send.numel == recv.numel, "reduce: {} elements to {}", send.numel,
              recv.numel);
    const bool at_root = rank_ == root;
    const void* from = at_root && send.ptr == recv.ptr ? MPI_IN_PLACE : send.ptr;
    MPI_CHECK(MPI_Reduce(from, at_root ? recv.ptr : nullptr, count(send), type(send), mpi_op(send, op), root,
                         MPI_COMM_WORLD));
    if (at_root && op == ReduceOp::Avg) scale(recv, 1.0 / size_);
  }
  void all_gather(Buffer x) override {
    SP_ASSERT(x.numel % size_t(size_) == 0, "all_gather: {} elements over {} ranks", x.numel, size_);
    Buffer block = x.slice(0, x.numel / size_t(size_));
    MPI_CHECK(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x.ptr, count(block), type(x), MPI_COMM_WORLD));
  }
  void broadcast(Buffer x, int root) override {
    MPI_CHECK(MPI_Bcast(x.ptr, count(x), type(x), root, MPI_COMM_WORLD));
  }
  void barrier() override { MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD)); }

  void all_reduce_host(std::vector<double>& v, ReduceOp op) override {
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, v.data(), int(v.size()), MPI_DOUBLE, op == ReduceOp::Max ? MPI_MAX : MPI_SUM,
                            MPI_COMM_WORLD));
    if (op == ReduceOp::Avg)
      for (auto& x : v) x /= size_;
  }
  std::vector<std::string> all_gather_string(const std::string& s) override {
    int len = int(s.size());
    std::vector<int> lens(static_cast<size_t>(size_)), offsets(static_cast<size_t>(size_), 0);
    MPI_CHECK(MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, MPI_COMM_WORLD));
    for (int r = 1; r < size_; ++r) offsets[size_t(r)] = offsets[size_t(r - 1)] + lens[size_t(r - 1)];
    std::string all(size_t(offsets.back() + lens.back()), '\0');
    MPI_CHECK(MPI_Allgatherv(s.data(), len, MPI_CHAR, all.data(), lens.data(), offsets.data(), MPI_CHAR,
                             MPI_COMM_WORLD));
    std::vector<std::string> out;
    for (int r = 0; r < size_; ++r) out.push_back(all.substr(size_t(offsets[size_t(r)]), size_t(lens[size_t(r)])));
    return out;
  }

private:
  int count(Buffer x) const {
    SP_ASSERT(x.numel <= size_t(INT32_MAX), "a collective of {} elements exceeds MPI's int count", x.numel);
    return int(x.numel);
  }
  MPI_Datatype type(Buffer x) const {
    switch (x.dtype) {
      case DType::F32: return MPI_FLOAT;
      case DType::F64: return MPI_DOUBLE;
      case DType::BF16: return bf16_type_;
      case DType::I32: return MPI_INT32_T;
    }
    return MPI_DATATYPE_NULL;
  }
  MPI_Op mpi_op(Buffer x, ReduceOp op) const {
    if (x.dtype == DType::BF16) return op == ReduceOp::Max ? bf16_max_ : bf16_sum_;
    return op == ReduceOp::Max ? MPI_MAX : MPI_SUM;
  }
  // Host buffers only: the MPI communicator serves the CPU backend.
  void scale(Buffer x, double f) {
    switch (x.dtype) {
      case DType::F32:
        for (size_t i = 0; i < x.numel; ++i) static_cast<float*>(x.ptr)[i] *= float(f);
        break;
      case DType::F64:
        for (size_t i = 0; i < x.numel; ++i) static_cast<double*>(x.ptr)[i] *= f;
        break;
      case DType::BF16: {
        auto* p = static_cast<uint16_t*>(x.ptr);
        for (size_t i = 0; i < x.numel; ++i) p[i] = float_to_bf16(bf16_to_float(p[i]) * float(f));
        break;
      }
      case DType::I32: SP_ASSERT(false, "Avg of integers");
    }
  }

  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  MPI_Datatype bf16_type_{};
  MPI_Op bf16_sum_{}, bf16_max_{};
};

#endif  // SOFTPICK_HAVE_MPI

}  // namespace

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v)) return true;
  return false;
}

Communicator& single_process() {
  static SingleCommunicator single;
  return single;
}

std::unique_ptr<Communicator> make_communicator() {
  if (!launched_by_mpi()) return std::make_unique<SingleCommunicator>();
#ifdef SOFTPICK_HAVE_MPI
  return std::make_unique<MpiCommunicator>();
#else
  fail("started by an MPI launcher, but this softpick was built without MPI; install libopenmpi-dev and rebuild, "
       "or run one process");
#endif
}

void abort_job(int exit_code) {
#ifdef SOFTPICK_HAVE_MPI
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, exit_code);
#endif
  std::exit(exit_code);
}

}  // namespace sp
