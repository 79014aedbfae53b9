#include "train/optimizer.h"

#include "core/check.h"

#include <algorithm>
#include <cmath>

namespace sp {

AdamW::AdamW(const OptimizerConfig& cfg, Model& model, Communicator& comm, int64_t zero_stage, DType reduce_dtype)
    : cfg_(cfg), model_(model), comm_(comm), sharded_(zero_stage == 1 && comm.size() > 1),
      aliased_(model.backend().weight_dtype() == model.backend().master_dtype()) {
  Backend& be = model.backend();
  const size_t P = model.params().numel, W = size_t(comm.size());
  if (sharded_) {
    SP_ASSERT(P % W == 0, "ZeRO-1 needs the flat buffers padded to a multiple of the world size");
    shard_size_ = P / W;
    shard_begin_ = size_t(comm.rank()) * shard_size_;
    grad_shard_ = be.alloc(shard_size_, be.grad_dtype());
  } else {
    shard_size_ = P;
  }
  if (reduce_dtype != be.grad_dtype() && comm.size() > 1) {
    SP_ASSERT(reduce_dtype == DType::BF16, "gradients reduce in their own dtype or in bf16");
    low_ = be.alloc(P, reduce_dtype);
    if (sharded_) low_shard_ = be.alloc(shard_size_, reduce_dtype);
  }
  master_ = aliased_ ? model.params().slice(shard_begin_, shard_size_) : be.alloc(shard_size_, be.master_dtype());
  m_ = be.alloc(shard_size_, be.master_dtype());
  v_ = be.alloc(shard_size_, be.master_dtype());
  norm_sq_ = be.alloc(1, kAccumDType);
}

AdamW::~AdamW() {
  Backend& be = model_.backend();
  if (!aliased_) be.release(master_);
  be.release(m_);
  be.release(v_);
  be.release(norm_sq_);
  if (grad_shard_) be.release(grad_shard_);
  if (low_) be.release(low_);
  if (low_shard_) be.release(low_shard_);
}

void AdamW::reduce_bucket(size_t i) {
  if (comm_.size() == 1) return;
  Backend& be = model_.backend();
  const GradBucket& bucket = model_.grad_buckets()[i];
  Buffer grads = model_.grads().slice(bucket.offset, bucket.numel);
  Buffer shard = grad_shard_;
  if (low_) {  // in bf16: rounded into the copy on the backend's stream, which the collective waits for
    be.copy(low_.slice(bucket.offset, bucket.numel), grads);
    grads = low_.slice(bucket.offset, bucket.numel);
    shard = low_shard_;
  }
  if (!sharded_) {
    comm_.all_reduce_async(grads, ReduceOp::Avg);
    return;
  }
  // ZeRO-1: the part of the bucket inside rank r's shard goes to rank r
  const size_t lo = bucket.offset, hi = bucket.offset + bucket.numel;
  for (int r = int(lo / shard_size_); r < comm_.size() && size_t(r) * shard_size_ < hi; ++r) {
    const size_t a = std::max(lo, size_t(r) * shard_size_), b = std::min(hi, size_t(r + 1) * shard_size_);
    const Buffer mine = shard.slice(a - size_t(r) * shard_size_, b - a);
    comm_.reduce_async(grads.slice(a - lo, b - a), mine, r, ReduceOp::Avg);
  }
}

void AdamW::finish_reduction() {
  Backend& be = model_.backend();
  comm_.join();  // the backend's work from here on sees the reduced gradients
  if (low_) be.copy(sharded_ ? grad_shard_ : model_.grads(), sharded_ ? low_shard_ : low_);
  be.fill_zero(norm_sq_);
  be.sum_squares(norm_sq_, sharded_ ? grad_shard_ : model_.grads());
  if (sharded_) {  // the shards' sums, still on the device
    comm_.all_reduce_async(norm_sq_, ReduceOp::Sum);
    comm_.join();
  }
}

void AdamW::reduce_gradients() {
  for (size_t i = 0; i < model_.grad_buckets().size(); ++i) reduce_bucket(i);
  finish_reduction();
}

double AdamW::grad_norm() {
  Backend& be = model_.backend();
  double sq = 0;
  be.download(std::span<double>(&sq, 1), norm_sq_);  // the one read
  return std::sqrt(sq);
}

void AdamW::step(double lr, int64_t step, double grad_scale) {
  Backend& be = model_.backend();
  SP_ASSERT(aliased_ || master_set_, "AdamW::step before set_master_weights: the master weights are unset");
  const Buffer grads = sharded_ ? grad_shard_ : model_.grads().slice(0, shard_size_);
  const size_t lo = shard_begin_, hi = shard_begin_ + shard_size_;
  for (const ParamSpec& s : model_.specs()) {
    // the part of this tensor inside the shard [lo, hi)
    const size_t a = std::max(lo, s.offset), b = std::min(hi, s.offset + s.numel);
    if (a >= b) continue;
    const bool decays = cfg_.decay_norms_and_embeddings || s.role == ParamRole::Matmul || s.role == ParamRole::LmHead;
    const AdamWArgs args{lr, cfg_.beta1, cfg_.beta2, cfg_.eps, decays ? cfg_.weight_decay : 0.0, step, grad_scale};
    be.adamw_update(master_.slice(a - lo, b - a), model_.params().slice(a, b - a), grads.slice(a - lo, b - a),
                    m_.slice(a - lo, b - a), v_.slice(a - lo, b - a), args);
  }
  if (sharded_) {  // every rank's updated shard to every rank, before the next forward reads the weights
    comm_.all_gather_async(model_.params());
    comm_.join();
  }
}

void AdamW::set_master_weights(std::span<const float> w) {
  Backend& be = model_.backend();
  SP_ASSERT(w.size() == model_.params().numel, "set_master_weights: {} values for {} parameters", w.size(),
            model_.params().numel);
  be.upload(model_.params(), w);  // the working copy: with the dtypes agreeing, the master too
  if (!aliased_) be.upload(master_, w.subspan(shard_begin_, shard_size_));
  master_set_ = true;
}

void AdamW::get_master_weights(std::vector<float>& w) { gather(master_, w); }

void AdamW::gather(Buffer shard, std::vector<float>& host) {
  Backend& be = model_.backend();
  const size_t P = model_.params().numel;
  host.assign(P, 0.0f);
  if (!sharded_) {
    be.download(std::span<float>(host), shard);
    return;
  }
  Buffer full = be.alloc(P, shard.dtype);
  be.copy(full.slice(shard_begin_, shard_size_), shard);
  comm_.all_gather(full);
  be.download(std::span<float>(host), full);
  be.release(full);
}

void AdamW::get_moments(std::vector<float>& m, std::vector<float>& v) {
  gather(m_, m);
  gather(v_, v);
}

void AdamW::set_moments(const std::vector<float>& m, const std::vector<float>& v) {
  Backend& be = model_.backend();
  SP_ASSERT(m.size() == model_.params().numel && v.size() == m.size(), "set_moments: wrong sizes");
  for (auto [host, shard] : {std::pair{&m, m_}, std::pair{&v, v_}})
    be.upload(shard, std::span<const float>(host->data() + shard_begin_, shard_size_));
}

double clip_scale(double grad_norm, double max_norm) {
  if (max_norm <= 0 || grad_norm <= max_norm) return 1.0;
  return max_norm / grad_norm;
}

}  // namespace sp
