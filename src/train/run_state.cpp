#include "train/run_state.h"

#include "checkpoint/sha256.h"
#include "core/check.h"
#include "core/log.h"

#include <cstring>
#include <vector>

namespace sp {

namespace {

// A checksum of the weights' bits: equal on every rank unless they diverged.
std::string weights_checksum(Model& model) {
  std::vector<float> w(model.params().numel);
  model.backend().download(std::span<float>(w), model.params());
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the 32-bit words
  for (float f : w) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    h = (h ^ u) * 1099511628211ull;
  }
  return fmt::format("{:016x}", h);
}

}  // namespace

void check_replicas(Model& model, Communicator& comm, int64_t step) {
  if (comm.size() == 1) return;
  const auto all = comm.all_gather_string(weights_checksum(model));
  for (int r = 1; r < comm.size(); ++r)
    if (all[size_t(r)] != all[0])
      fail("step {}: the weights of rank {} (checksum {}) differ from rank 0's ({}): the replicas diverged; "
           "check that every rank runs the same binary on the same kind of machine", step, r, all[size_t(r)], all[0]);
}

void check_ranks_agree(const Config& cfg, Communicator& comm) {
  if (comm.size() == 1) return;
  const std::string mine = sha256_file("/proc/self/exe") + " " + to_json(cfg).dump();
  const auto all = comm.all_gather_string(mine);
  for (int r = 1; r < comm.size(); ++r)
    if (all[size_t(r)] != all[0])
      fail("rank {} was started with a different {} than rank 0; launch every rank with the same binary, "
           "config file and overrides", r,
           all[size_t(r)].substr(0, 64) != all[0].substr(0, 64) ? "binary" : "config");
}

namespace {

// Rank 0's copy of a host vector, on every rank.
void broadcast_host(std::vector<float>& v, size_t n, Backend& be, Communicator& comm) {
  if (comm.size() == 1) return;
  v.resize(n);
  Buffer b = be.alloc(n, DType::F32);
  if (comm.rank() == 0) be.upload(b, std::span<const float>(v));
  comm.broadcast(b, 0);
  be.download(std::span<float>(v), b);
  be.release(b);
}

}  // namespace

TrainState restore_checkpoint(const std::string& dir, bool resume, Model& model, AdamW& optimizer,
                              Communicator& comm) {
  Backend& be = model.backend();
  const size_t P = model.params().numel;
  CheckpointTensors t;
  TrainState state;
  nlohmann::ordered_json state_json;
  if (comm.rank() == 0) {
    state = load_checkpoint(dir, model.specs(), P, t, /*with_optimizer=*/resume);
    add_train_state(state_json, state);
  }
  broadcast_host(t.params, P, be, comm);
  optimizer.set_master_weights(t.params);
  if (!resume) return TrainState{};
  broadcast_host(t.exp_avg, P, be, comm);
  broadcast_host(t.exp_avg_sq, P, be, comm);
  optimizer.set_moments(t.exp_avg, t.exp_avg_sq);
  return train_state_from_json(nlohmann::json::parse(broadcast_string(state_json.dump(), comm)));
}

void save_run_checkpoint(const Config& cfg, const TrainState& state, Model& model, AdamW& optimizer,
                         Communicator& comm) {
  check_replicas(model, comm, state.step);
  CheckpointTensors t;
  optimizer.get_master_weights(t.params);
  optimizer.get_moments(t.exp_avg, t.exp_avg_sq);
  if (comm.rank() != 0) return;
  const std::string dir = save_checkpoint(cfg.training.run_dir, model.specs(), t, state, cfg);
  rotate_checkpoints(cfg.training.run_dir, cfg.checkpoint.keep_latest_k, cfg.checkpoint.keep_every);
  spdlog::info("checkpoint {}", dir);
}

}  // namespace sp
