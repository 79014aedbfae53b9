// The NCCL calls the NCCL communicator uses, for the harness (docs/cuda_harness.md).
//
// Device buffers are host memory, so a collective is the matching MPI collective on MPI_COMM_WORLD when the
// process runs under an MPI launcher (one rank per emulated GPU; each communicator on its own duplicate of
// the world communicator), and the identity for a single rank. A call is checked when it is made and runs
// on its stream (streams.h). bf16 is reduced in fp32 and rounded back.
#include <cuda_bf16.h>
#include <nccl.h>

#include "streams.h"

#ifdef SOFTPICK_HAVE_MPI
#include <mpi.h>
#endif

#include <climits>
#include <cstdio>
#include <cstring>
#include <vector>

struct ncclComm {
  int rank, nranks;
#ifdef SOFTPICK_HAVE_MPI
  MPI_Comm mpi = MPI_COMM_NULL;  // null for a single rank
#endif
  bool single() const { return nranks == 1; }
};

namespace {

bool fits_int(size_t n) { return n <= size_t(INT_MAX); }

size_t type_size(ncclDataType_t t) {
  switch (t) {
    case ncclInt8: case ncclUint8: return 1;
    case ncclFloat16: case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    default: return 8;
  }
}

#ifdef SOFTPICK_HAVE_MPI
MPI_Datatype mpi_type(ncclDataType_t t) {
  switch (t) {
    case ncclInt8: return MPI_INT8_T;
    case ncclUint8: return MPI_UINT8_T;
    case ncclInt32: return MPI_INT32_T;
    case ncclUint32: return MPI_UINT32_T;
    case ncclInt64: return MPI_INT64_T;
    case ncclUint64: return MPI_UINT64_T;
    case ncclFloat32: return MPI_FLOAT;
    case ncclFloat64: return MPI_DOUBLE;
    default: return MPI_DATATYPE_NULL;  // 16-bit floats travel as fp32
  }
}

MPI_Op mpi_op(ncclRedOp_t op) {
  switch (op) {
    case ncclMax: return MPI_MAX;
    case ncclMin: return MPI_MIN;
    case ncclProd: return MPI_PROD;
    default: return MPI_SUM;  // ncclSum, and ncclAvg before its division
  }
}

#endif

ncclResult_t check_reduce(size_t count, ncclDataType_t t, ncclRedOp_t op) {
  if (t == ncclFloat16 || !fits_int(count)) return ncclInvalidArgument;
  if (op == ncclAvg && t != ncclBfloat16 && t != ncclFloat32 && t != ncclFloat64) return ncclInvalidArgument;
  return ncclSuccess;
}

// The reduction of `count` elements at `send` (every rank) into `recv` (all of it, or this rank's block
// of a reduce-scatter), in fp32 for bf16; checked by check_reduce.
void reduce(const void* send, void* recv, size_t count, ncclDataType_t t, ncclRedOp_t op, ncclComm* c, bool scatter) {
  const size_t out = scatter ? count / size_t(c->nranks) : count;
  const bool bf16 = t == ncclBfloat16;
  std::vector<float> in_f, out_f;
  const void* s = send;
  void* r = recv;
  if (bf16) {
    in_f.resize(count);
    out_f.resize(out);
    for (size_t i = 0; i < count; ++i) in_f[i] = __bfloat162float(static_cast<const __nv_bfloat16*>(send)[i]);
    s = in_f.data();
    r = out_f.data();
  }
  const size_t esize = bf16 ? 4 : type_size(t);
  if (c->single()) {
    if (s != r) std::memmove(r, s, out * esize);
  } else {
#ifdef SOFTPICK_HAVE_MPI
    const MPI_Datatype mt = bf16 ? MPI_FLOAT : mpi_type(t);
    if (scatter) {
      std::vector<char> copy;
      if (s == r) {
        copy.assign(static_cast<const char*>(s), static_cast<const char*>(s) + count * esize);
        s = copy.data();
      }
      MPI_Reduce_scatter_block(s, r, int(out), mt, mpi_op(op), c->mpi);
    } else {
      MPI_Allreduce(s == r ? MPI_IN_PLACE : s, r, int(out), mt, mpi_op(op), c->mpi);
    }
#endif
  }
  if (op == ncclAvg) {
    for (size_t i = 0; i < out; ++i) {
      if (bf16 || t == ncclFloat32) static_cast<float*>(r)[i] /= float(c->nranks);
      else static_cast<double*>(r)[i] /= double(c->nranks);
    }
  }
  if (bf16)
    for (size_t i = 0; i < out; ++i) static_cast<__nv_bfloat16*>(recv)[i] = __float2bfloat16(out_f[i]);
}

}  // namespace

extern "C" {

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  std::memset(id, 0, sizeof *id);
  std::snprintf(id->internal, sizeof id->internal, "cuda-emu");
  return ncclSuccess;
}

ncclResult_t ncclCommInitRankConfig(ncclComm_t* comm, int nranks, ncclUniqueId, int rank, ncclConfig_t*) {
  auto* c = new ncclComm{rank, nranks};
  if (nranks > 1) {
    int world = 0;
#ifdef SOFTPICK_HAVE_MPI
    int mpi_up = 0;
    MPI_Initialized(&mpi_up);
    if (mpi_up) MPI_Comm_size(MPI_COMM_WORLD, &world);
#endif
    if (world != nranks) {
      std::fprintf(stderr, "cuda-emu: NCCL with %d ranks needs an MPI job of as many ranks\n", nranks);
      delete c;
      return ncclInvalidUsage;
    }
#ifdef SOFTPICK_HAVE_MPI
    MPI_Comm_dup(MPI_COMM_WORLD, &c->mpi);
#endif
  }
  *comm = c;
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  return ncclCommInitRankConfig(comm, nranks, id, rank, nullptr);
}

ncclResult_t ncclCommDestroy(ncclComm_t c) {
  emu::synchronize_device();  // its queued collectives first
#ifdef SOFTPICK_HAVE_MPI
  if (c && c->mpi != MPI_COMM_NULL) MPI_Comm_free(&c->mpi);
#endif
  delete c;
  return ncclSuccess;
}
ncclResult_t ncclCommAbort(ncclComm_t c) { return ncclCommDestroy(c); }

ncclResult_t ncclCommGetAsyncError(ncclComm_t, ncclResult_t* state) {
  *state = ncclSuccess;
  return ncclSuccess;
}
ncclResult_t ncclCommCount(const ncclComm_t c, int* n) {
  *n = c->nranks;
  return ncclSuccess;
}
ncclResult_t ncclCommUserRank(const ncclComm_t c, int* r) {
  *r = c->rank;
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t t, ncclRedOp_t op, ncclComm_t c,
                           cudaStream_t stream) {
  if (const ncclResult_t r = check_reduce(count, t, op); r != ncclSuccess) return r;
  emu::enqueue(stream, [=] { reduce(send, recv, count, t, op, c, false); }, /*collective=*/true);
  return ncclSuccess;
}

ncclResult_t ncclReduce(const void* send, void* recv, size_t count, ncclDataType_t t, ncclRedOp_t op, int root,
                        ncclComm_t c, cudaStream_t stream) {
  if (const ncclResult_t r = check_reduce(count, t, op); r != ncclSuccess) return r;
  if (root < 0 || root >= c->nranks) return ncclInvalidArgument;
  emu::enqueue(stream, [=] {
    if (c->rank == root) {
      reduce(send, recv, count, t, op, c, false);  // the root's all-reduce result is the reduction
      return;
    }
    // the others contribute: the same all-reduce, into scratch they drop
    std::vector<char> scratch(count * type_size(t));
    reduce(send, scratch.data(), count, t, op, c, false);
  }, /*collective=*/true);
  return ncclSuccess;
}

ncclResult_t ncclReduceScatter(const void* send, void* recv, size_t recv_count, ncclDataType_t t, ncclRedOp_t op,
                               ncclComm_t c, cudaStream_t stream) {
  const size_t count = recv_count * size_t(c->nranks);
  if (const ncclResult_t r = check_reduce(count, t, op); r != ncclSuccess) return r;
  emu::enqueue(stream, [=] { reduce(send, recv, count, t, op, c, true); }, /*collective=*/true);
  return ncclSuccess;
}

ncclResult_t ncclAllGather(const void* send, void* recv, size_t send_count, ncclDataType_t t, ncclComm_t c,
                           cudaStream_t stream) {
  const size_t bytes = send_count * type_size(t);
  if (!c->single() && !fits_int(bytes)) return ncclInvalidArgument;
  emu::enqueue(stream, [=] {
    if (c->single()) {
      if (send != recv) std::memmove(recv, send, bytes);
      return;
    }
#ifdef SOFTPICK_HAVE_MPI
    const bool in_place = static_cast<const char*>(send) == static_cast<char*>(recv) + size_t(c->rank) * bytes;
    MPI_Allgather(in_place ? MPI_IN_PLACE : send, int(bytes), MPI_BYTE, recv, int(bytes), MPI_BYTE, c->mpi);
#endif
  }, /*collective=*/true);
  return ncclSuccess;
}

ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t t, int root, ncclComm_t c,
                           cudaStream_t stream) {
  const size_t bytes = count * type_size(t);
  if (!c->single() && !fits_int(bytes)) return ncclInvalidArgument;
  emu::enqueue(stream, [=] {
    if (c->rank == root && send != recv) std::memmove(recv, send, bytes);
    if (c->single()) return;
#ifdef SOFTPICK_HAVE_MPI
    MPI_Bcast(recv, int(bytes), MPI_BYTE, root, c->mpi);
#endif
  }, /*collective=*/true);
  return ncclSuccess;
}

ncclResult_t ncclGroupStart() { return ncclSuccess; }
ncclResult_t ncclGroupEnd() { return ncclSuccess; }

const char* ncclGetErrorString(ncclResult_t r) {
  switch (r) {
    case ncclSuccess: return "no error";
    case ncclInvalidArgument: return "invalid argument (cuda-emu: unsupported type or a count beyond INT_MAX)";
    case ncclInvalidUsage: return "invalid usage";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unhandled error";
  }
}

}  // extern "C"
