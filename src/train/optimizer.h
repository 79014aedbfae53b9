// AdamW over the flat parameter buffer, one call per tensor so weight decay can follow the tensor's role,
// with the global gradient norm and clipping folded in.
#pragma once

#include "backend/backend.h"
#include "config/config.h"
#include "model/model.h"

namespace sp {

class AdamW {
public:
  AdamW(const OptimizerConfig& cfg, Model& model);
  ~AdamW();
  AdamW(const AdamW&) = delete;
  AdamW& operator=(const AdamW&) = delete;

  // sqrt of the sum of squares of every gradient (a sync point)
  double grad_norm();
  // One update with learning rate lr; the gradient is multiplied by grad_scale first (clipping).
  // `step` is the 1-based count of updates, for the bias correction.
  void step(double lr, int64_t step, double grad_scale);

  Buffer m() const { return m_; }  // first moments, same layout as the parameters
  Buffer v() const { return v_; }  // second moments

private:
  OptimizerConfig cfg_;
  Model& model_;
  Buffer m_, v_;
};

// Clipping factor for a gradient norm: min(1, max_norm / norm); 1 when max_norm is 0 (no clipping).
double clip_scale(double grad_norm, double max_norm);

}  // namespace sp
