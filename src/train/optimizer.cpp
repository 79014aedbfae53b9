#include "train/optimizer.h"

#include <cmath>

namespace sp {

AdamW::AdamW(const OptimizerConfig& cfg, Model& model) : cfg_(cfg), model_(model) {
  Backend& be = model.backend();
  m_ = be.alloc(model.params().numel, be.param_dtype());
  v_ = be.alloc(model.params().numel, be.param_dtype());
}

AdamW::~AdamW() {
  model_.backend().release(m_);
  model_.backend().release(v_);
}

double AdamW::grad_norm() { return std::sqrt(model_.backend().sum_squares(model_.grads())); }

void AdamW::step(double lr, int64_t step, double grad_scale) {
  Backend& be = model_.backend();
  for (const ParamSpec& s : model_.specs()) {
    const bool decays = cfg_.decay_norms_and_embeddings ||
                        (s.role == ParamRole::Matmul || s.role == ParamRole::LmHead);
    const AdamWArgs args{lr, cfg_.beta1, cfg_.beta2, cfg_.eps, decays ? cfg_.weight_decay : 0.0, step, grad_scale};
    be.adamw_update(model_.params().slice(s.offset, s.numel), model_.grads().slice(s.offset, s.numel),
                    m_.slice(s.offset, s.numel), v_.slice(s.offset, s.numel), args);
  }
}

double clip_scale(double grad_norm, double max_norm) {
  if (max_norm <= 0 || grad_norm <= max_norm) return 1.0;
  return max_norm / grad_norm;
}

}  // namespace sp
