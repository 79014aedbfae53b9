// What a data-parallel run keeps consistent across ranks and across restarts, apart from the loop itself:
// the checks that every rank runs the same binary and config and holds the same weights, and the run's
// checkpoints (rank 0 reads and writes; the other ranks receive by broadcast, so no shared file system
// is needed). docs/checkpoints.md and docs/distributed.md describe both.
#pragma once

#include "checkpoint/checkpoint.h"
#include "config/config.h"
#include "dist/comm.h"
#include "model/model.h"
#include "train/optimizer.h"

#include <string>

namespace sp {

// Every rank must run the same binary with the same resolved config; fails naming the rank otherwise.
void check_ranks_agree(const Config& cfg, Communicator& comm);

// Stops the job loudly if the ranks' weights differ (they must stay bit-identical).
void check_replicas(Model& model, Communicator& comm, int64_t step);

// Rank 0 reads a checkpoint and every rank receives the weights (master and working copy) and, when
// resuming, the moments and the training state. Without `resume` it returns a fresh TrainState.
TrainState restore_checkpoint(const std::string& dir, bool resume, Model& model, AdamW& optimizer,
                              Communicator& comm);

// A collective: the master weights and moments are gathered from every rank's shard, the replicas are
// checked, and rank 0 writes the checkpoint of `state` into the run directory and rotates old ones.
void save_run_checkpoint(const Config& cfg, const TrainState& state, Model& model, AdamW& optimizer,
                         Communicator& comm);

}  // namespace sp
