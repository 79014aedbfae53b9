#include "data/windows.h"

#include "core/check.h"

#include <algorithm>

namespace sp {

DataLayout parse_data_layout(const std::string& name) {
  if (name == "stream") return DataLayout::Stream;
  if (name == "document") return DataLayout::Document;
  SP_ASSERT(name == "bos", "data layout '{}' (the config validates it)", name);
  return DataLayout::Bos;
}

const char* data_layout_name(DataLayout layout) {
  switch (layout) {
    case DataLayout::Stream: return "stream";
    case DataLayout::Document: return "document";
    case DataLayout::Bos: return "bos";
  }
  return "?";
}

namespace {

// The document layout's window starts: greedily, the first BOS at or after the previous window's T inputs.
std::vector<uint32_t> document_window_starts(const Shard& shard, int64_t T, int32_t bos) {
  std::vector<uint32_t> starts;
  const int64_t n = shard.size();
  std::vector<int32_t> chunk(size_t(1) << 16);
  int64_t next = 0;  // the earliest token a window may start at
  for (int64_t c = 0; c < n; c += int64_t(chunk.size())) {
    const int64_t len = std::min<int64_t>(int64_t(chunk.size()), n - c);
    if (c + len <= next) continue;
    shard.read(c, std::span<int32_t>(chunk.data(), size_t(len)));
    for (int64_t i = std::max<int64_t>(0, next - c); i < len; ++i) {
      const int64_t p = c + i;
      if (chunk[size_t(i)] != bos) continue;
      if (p + T + 1 > n) return starts;
      starts.push_back(uint32_t(p));
      next = p + T;
      i = next - c - 1;  // the loop's ++i moves to `next` (maybe past this chunk)
    }
  }
  return starts;
}

}  // namespace

ShardWindows::ShardWindows(const Shard& shard, int64_t seq_len, DataLayout layout, int32_t bos_token_id)
    : shard_(&shard), T_(seq_len), layout_(layout), bos_(bos_token_id) {
  SP_ASSERT(seq_len > 0, "seq_len {}", seq_len);
  const int64_t n = shard.size();
  switch (layout) {
    case DataLayout::Stream: count_ = n > T_ ? uint64_t((n - 1) / T_) : 0; break;
    case DataLayout::Bos: count_ = uint64_t(n / T_); break;
    case DataLayout::Document:
      starts_ = document_window_starts(shard, T_, bos_);
      count_ = starts_.size();
      break;
  }
}

void ShardWindows::read(uint64_t j, std::span<int32_t> out) const {
  SP_ASSERT(j < count_ && int64_t(out.size()) == T_ + 1, "window {} of {} into {} tokens", j, count_, out.size());
  switch (layout_) {
    case DataLayout::Stream: shard_->read(int64_t(j) * T_, out); break;
    case DataLayout::Document: shard_->read(int64_t(starts_[j]), out); break;
    case DataLayout::Bos:
      out[0] = bos_;
      shard_->read(int64_t(j) * T_, out.subspan(1));
      break;
  }
}

}  // namespace sp
