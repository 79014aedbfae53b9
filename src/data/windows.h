// How a shard is cut into training windows of T + 1 tokens (inputs tokens 0..T-1, targets 1..T), one of
// three layouts (`data.layout`, docs/data.md):
//   stream    window j covers stream tokens [jT, jT + T + 1): windows start anywhere, usually inside a
//             document; (n - 1) / T windows. The paper's layout (concatenated documents cut into windows).
//   document  every window starts at a document start (a BOS token of the stream) and holds the next T + 1
//             tokens, running on into the following documents; the next window starts at the first BOS at
//             or after the end of this one's inputs, so windows never overlap by more than the one target
//             token, and the tail of a document that straddles a window end is not trained on.
//   bos       window j is BOS followed by stream tokens [jT, jT + T): every window starts with BOS and
//             nothing is skipped; n / T windows.
#pragma once

#include "data/shard.h"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace sp {

enum class DataLayout { Stream, Document, Bos };

DataLayout parse_data_layout(const std::string& name);  // "stream" | "document" | "bos"; SP_ASSERTs otherwise
const char* data_layout_name(DataLayout layout);

class ShardWindows {
public:
  ShardWindows(const Shard& shard, int64_t seq_len, DataLayout layout, int32_t bos_token_id);

  uint64_t count() const { return count_; }
  // Copies window j (T + 1 tokens) into out.
  void read(uint64_t j, std::span<int32_t> out) const;

private:
  const Shard* shard_;
  int64_t T_;
  DataLayout layout_;
  int32_t bos_;
  uint64_t count_ = 0;
  std::vector<uint32_t> starts_;  // document layout: the first token of each window (shards hold < 2^31)
};

}  // namespace sp
