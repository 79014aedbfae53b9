// AdamW over the flat parameter buffer, data-parallel and optionally sharded (ZeRO-1).
//
// After the last micro-batch of a step, reduce_gradients() averages the gradients over the ranks: an
// all-reduce (zero_stage 0), or a reduce-scatter that leaves each rank the average of its shard only
// (zero_stage 1). Rank r's shard is elements [r S, (r + 1) S) of the flat buffers, S = P / W (the model pads
// P to a multiple of W). grad_norm() is the global norm either way. step() updates the local shard, one
// call per tensor piece so weight decay follows the tensor's role, then (ZeRO-1) all-gathers the
// parameters, so every rank again holds identical weights. With ZeRO-1 the moments exist for the shard only:
// 8 P / W bytes per rank instead of 8 P.
#pragma once

#include "backend/backend.h"
#include "config/config.h"
#include "dist/comm.h"
#include "model/model.h"

#include <vector>

namespace sp {

class AdamW {
public:
  AdamW(const OptimizerConfig& cfg, Model& model, Communicator& comm = single_process(), int64_t zero_stage = 0);
  ~AdamW();
  AdamW(const AdamW&) = delete;
  AdamW& operator=(const AdamW&) = delete;

  void reduce_gradients();
  // sqrt of the sum of squares of every (reduced) gradient; a sync point
  double grad_norm();
  // One update with learning rate lr; the gradient is multiplied by grad_scale first (clipping).
  // `step` is the 1-based count of updates, for the bias correction.
  void step(double lr, int64_t step, double grad_scale);

  // The whole moments in the parameter layout, gathered from every rank's shard (a collective), and back.
  void get_moments(std::vector<float>& m, std::vector<float>& v);
  void set_moments(const std::vector<float>& m, const std::vector<float>& v);

  bool sharded() const { return sharded_; }

private:
  OptimizerConfig cfg_;
  Model& model_;
  Communicator& comm_;
  bool sharded_;
  size_t shard_begin_ = 0, shard_size_ = 0;  // elements of the flat buffers this rank updates
  Buffer m_, v_;                             // (shard_size) moments
  Buffer grad_shard_;                        // (shard_size) reduced gradients, ZeRO-1 only
};

// Clipping factor for a gradient norm: min(1, max_norm / norm); 1 when max_norm is 0 (no clipping).
double clip_scale(double grad_norm, double max_norm);

}  // namespace sp
