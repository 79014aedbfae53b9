// AdamW over the flat parameter buffer, data-parallel and optionally sharded (ZeRO-1).
//
// The optimizer owns the master weights and the moments (master_dtype), for its shard. The model's params()
// are the working copy the layers read (weight_dtype): after each update the backend rewrites it from the
// master. When the two dtypes agree (the CPU) the master is params() itself, or this rank's slice of it,
// and no memory is duplicated; otherwise (fp32 master, bf16 working copy on GPUs) the master is a buffer of
// its own. The master is set only from host values (set_master_weights: the init or a checkpoint) and
// changed only by step(), so it always holds exactly the fp32 values that produced it, never values
// re-derived from a rounded working copy; checkpoints save it (get_master_weights).
//
// During the last micro-batch's backward pass, reduce_bucket(i) averages bucket i of the gradients
// (Model::grad_buckets: one per block, the head, the embedding) over the ranks as soon as the pass has
// issued its work: an all-reduce (zero_stage 0), or, under ZeRO-1, a reduce of each part of the bucket to
// the rank whose shard holds it. Rank r's shard is elements [r S, (r + 1) S) of the flat buffers,
// S = P / W (the model pads P to a multiple of W). On GPUs the collectives run on the communicator's
// stream while the pass goes on (docs/distributed.md, "Overlap"). finish_reduction() then orders the
// backend's later work after them and sums the squares of the reduced gradients on the device;
// grad_norm() reads that sum (the global norm either way). step() updates the local shard, one call per
// tensor piece so weight decay follows the tensor's role, then (ZeRO-1) all-gathers the working copy, so
// every rank again holds identical weights. With ZeRO-1 the master and the moments exist for the shard
// only: 8 P / W bytes of moments per rank instead of 8 P (plus 4 P / W of master on GPUs).
#pragma once

#include "backend/backend.h"
#include "config/config.h"
#include "dist/comm.h"
#include "model/model.h"

#include <span>
#include <vector>

namespace sp {

class AdamW {
public:
  // reduce_dtype: what the gradients travel in (distributed.reduce_dtype): the backend's grad_dtype(), or
  // BF16, which rounds them into a bf16 copy before the collective and converts the result back.
  AdamW(const OptimizerConfig& cfg, Model& model, Communicator& comm = single_process(), int64_t zero_stage = 0,
        DType reduce_dtype = DType::F32);
  ~AdamW();
  AdamW(const AdamW&) = delete;
  AdamW& operator=(const AdamW&) = delete;

  // Starts the reduction of model.grad_buckets()[i] (its backward work issued); Model::backward's hook.
  void reduce_bucket(size_t i);
  // After the last bucket: the backend's later work waits for the reductions; the squared norm is summed.
  void finish_reduction();
  // Both at once, after a backward pass without the hook.
  void reduce_gradients();
  // sqrt of the sum of squares of every reduced gradient (finish_reduction's sum), read: a sync point
  double grad_norm();
  // One update with learning rate lr; the gradient is multiplied by grad_scale first (clipping).
  // `step` is the 1-based count of updates, for the bias correction.
  void step(double lr, int64_t step, double grad_scale);

  // The weights in the parameter layout (P), fp32 on the host: set_master_weights() sets this rank's shard
  // of the master and the whole working copy, each converted once from these values (every rank passes the
  // same values); get_master_weights() gathers the master from every rank's shard (a collective).
  void set_master_weights(std::span<const float> w);
  void get_master_weights(std::vector<float>& w);
  // The whole moments in the parameter layout, gathered from every rank's shard (a collective), and back.
  void get_moments(std::vector<float>& m, std::vector<float>& v);
  void set_moments(const std::vector<float>& m, const std::vector<float>& v);

  bool sharded() const { return sharded_; }
  // (shard) this rank's master weights: a slice of the model's params() when the dtypes agree
  Buffer master() const { return master_; }

private:
  // The whole (P) host copy of a buffer of this rank's shard, gathered from every rank under ZeRO-1.
  void gather(Buffer shard, std::vector<float>& host);

  OptimizerConfig cfg_;
  Model& model_;
  Communicator& comm_;
  bool sharded_;
  size_t shard_begin_ = 0, shard_size_ = 0;  // elements of the flat buffers this rank updates
  bool aliased_;                             // master_ is a view into model_.params()
  bool master_set_ = false;                  // set_master_weights() was called (needed unless aliased_)
  Buffer master_;                            // (shard_size) master weights
  Buffer m_, v_;                             // (shard_size) moments
  Buffer grad_shard_;                        // (shard_size) reduced gradients, ZeRO-1 only
  Buffer low_, low_shard_;                   // (P), (shard_size under ZeRO-1) bf16 copies for the collective
  Buffer norm_sq_;                           // (1) kAccumDType: the gradients' sum of squares
};

// Clipping factor for a gradient norm: min(1, max_norm / norm); 1 when max_norm is 0 (no clipping).
double clip_scale(double grad_norm, double max_norm);

}  // namespace sp
