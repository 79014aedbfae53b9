// The data loader: serves (B, T+1) token windows to rank r of W ranks.
//
// Each shard is cut into windows of T + 1 tokens by the data layout (data/windows.h: from the stream, at
// document starts, or BOS + T stream tokens). All windows of all shards form one epoch. With shuffling, each epoch e permutes the shard
// order and, within each shard, the window order, from (seed, e) alone.
//
// The epochs, one after another, form an endless stream of windows. The loader's position is one number:
// `consumed`, the count of windows taken from the stream by all ranks together. At each call every rank
// takes B windows: rank r takes stream positions [consumed + r*B, consumed + (r+1)*B), then consumed grows
// by W*B. Hence ranks are disjoint, every window is served exactly once per epoch (the epoch boundary is
// crossed inside a batch if need be), and resuming from `consumed` on a different world size neither
// repeats nor skips a window. docs/data.md has the details.
#pragma once

#include "data/shard.h"
#include "data/windows.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace sp {

struct LoaderOptions {
  int64_t batch_size = 1;     // B, windows per call per rank
  int64_t seq_len = 1;        // T, a window holds T + 1 tokens
  int64_t vocab_size = 0;     // validate token ids against this (0: no check)
  int64_t bos_token_id = 1;
  DataLayout layout = DataLayout::Stream;
  std::string seq_len_name = "training.seq_len";  // what sets T, for messages
  uint64_t seed = 0;
  bool shuffle = true;
  int rank = 0;
  int world_size = 1;
};

struct LoaderPosition {
  uint64_t consumed = 0;           // windows taken from the stream by all ranks
  uint64_t windows_per_epoch = 0;  // to detect resuming on different data
  uint64_t seed = 0;
  bool shuffle = true;
  DataLayout layout = DataLayout::Stream;
};

class DataLoader {
public:
  // Opens and validates every shard; an Error names the first bad file. `what` names the data for
  // messages (e.g. "data.train_files").
  DataLoader(const std::vector<std::string>& files, const LoaderOptions& opt, const std::string& what);
  ~DataLoader();

  // Fills `tokens` (B, T+1) with this rank's next batch and advances the global position.
  void next(std::span<int32_t> tokens);

  uint64_t windows_per_epoch() const { return windows_per_epoch_; }
  uint64_t epoch() const { return pos_.consumed / windows_per_epoch_; }
  int64_t total_tokens() const;
  const std::vector<Shard>& shards() const { return shards_; }

  // The inputs of the first S windows in file order, unshuffled, as the periodic analysis and `softpick
  // analyze` read them: (S, T). S <= windows_per_epoch(). Leaves the position alone.
  std::vector<int32_t> first_inputs(int64_t S) const;

  LoaderPosition position() const { return pos_; }
  // Restores a saved position. The data must have the same number of windows per epoch, layout, seed
  // and shuffle setting; the world size and rank may differ. Throws an Error otherwise.
  void restore(const LoaderPosition& p);
  void rewind() { pos_.consumed = 0; }

  // Stream position -> (shard index, window index in that shard).
  std::pair<size_t, uint64_t> locate(uint64_t stream_index);

private:
  struct Epoch;  // shard order and per-shard window permutations of one epoch, computed lazily
  LoaderOptions opt_;
  std::string what_;
  std::vector<Shard> shards_;
  std::vector<ShardWindows> windows_;  // one per shard
  uint64_t windows_per_epoch_ = 0;
  LoaderPosition pos_;
  std::unique_ptr<Epoch> epoch_;
};

nlohmann::json to_json(const LoaderPosition& p);
LoaderPosition loader_position_from_json(const nlohmann::json& j);

}  // namespace sp
