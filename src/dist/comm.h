// The communicator: collectives across the ranks of a data-parallel job, on backend buffers.
//
// Implementations: "single" (one process, no launcher needed, every collective is the identity), "mpi"
// (MPI_COMM_WORLD; host buffers, used by the CPU backend) and "nccl" (device buffers, bootstrapped over
// MPI; compiled where CUDA is present, used by the CUDA backend). docs/distributed.md describes launching.
//
// Every rank must call every collective in the same order with the same sizes. Buffers are fp32, fp64 or
// bf16; Avg divides the sum by the world size.
#pragma once

#include "backend/backend.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sp {

enum class ReduceOp { Sum, Avg, Max };

class Communicator {
public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;  // rank within its node (picks the GPU)
  virtual int local_size() const = 0;  // ranks on this node (share its cores)

  // Collectives on the backend's buffers. They are ordered after the backend's work so far, the backend's
  // later work is ordered after them, and they have completed when the call returns (the NCCL communicator
  // waits for them at most its timeout, then ends the job naming the rank).
  //
  // in place on every rank
  virtual void all_reduce(Buffer x, ReduceOp op) = 0;
  // send (n) on every rank -> recv (n) on `root` only (recv is not written elsewhere)
  virtual void reduce(Buffer send, Buffer recv, int root, ReduceOp op) = 0;
  // in place: x (size() * n), rank r contributes block r, every rank receives all blocks
  virtual void all_gather(Buffer x) = 0;
  virtual void broadcast(Buffer x, int root) = 0;
  virtual void barrier() = 0;

  // The same, overlapping the backend's work: ordered after the backend's work so far, but neither the
  // backend's later work nor the host waits for them, until join() and watch(). The NCCL communicator runs
  // them on a stream of its own; the host communicators (single, mpi) complete them before returning.
  virtual void all_reduce_async(Buffer x, ReduceOp op) { all_reduce(x, op); }
  virtual void reduce_async(Buffer send, Buffer recv, int root, ReduceOp op) { reduce(send, recv, root, op); }
  virtual void all_gather_async(Buffer x) { all_gather(x); }
  // The backend's work issued from now on waits for every collective so far (on the device: the host goes on).
  virtual void join() {}
  // The host waits until every collective so far has completed, at most the timeout (a dead peer ends the job).
  virtual void watch() {}

  // Small host values for control decisions (loss sums, stop flags, checksums).
  virtual void all_reduce_host(std::vector<double>& values, ReduceOp op) = 0;
  virtual std::vector<std::string> all_gather_string(const std::string& s) = 0;
};

// Rank 0's string, on every rank.
inline std::string broadcast_string(const std::string& s, Communicator& comm) { return comm.all_gather_string(s)[0]; }

// True when an MPI launcher (mpirun, srun with PMI/PMIx) started this process.
bool launched_by_mpi();

// "single" when the process was not started by an MPI launcher, else "mpi". Initialises MPI if needed.
std::unique_ptr<Communicator> make_communicator();

// The one-process communicator (tests, benchmarks, tools that run on one process).
Communicator& single_process();

// The NCCL communicator for device buffers of the backend whose stream is `stream` (a cudaStream_t): rank 0
// creates the NCCL id and broadcasts it over `bootstrap` (MPI), the local rank picks the GPU. Collectives run
// on a stream of the communicator's own, ordered against `stream` by events; every wait for them lasts at
// most `timeout_s`, then aborts the communicator (and fails naming the rank) rather than hang. Only where
// CUDA was found at build time; elsewhere it fails with a message.
std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> bootstrap, void* stream,
                                                     double timeout_s);

// The communicator for a job's gradients on `backend` (distributed.backend): "auto" is NCCL on a GPU and
// the launcher's (MPI or single) on a CPU; a single process keeps `launcher`. Fails with a message for a
// choice that cannot work (NCCL on the CPU, even for one process; MPI on the GPU buffers of several ranks).
std::unique_ptr<Communicator> communicator_for(std::unique_ptr<Communicator> launcher, const std::string& choice,
                                               Backend& backend);

// Ends every rank of the job now (MPI_Abort), after the caller has reported why. No-op for one process.
[[noreturn]] void abort_job(int exit_code);

}  // namespace sp
