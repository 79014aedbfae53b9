// Token shards (llm.c compatible, docs/data.md): a 1024-byte header of 256 little-endian int32
//   [0] magic 20240520, [1] version (1: uint16 tokens, 2: uint32 tokens), [2] token count,
// then the tokens. Documents are concatenated, each starting with the BOS token.
// Offsets are 64-bit throughout, so shards over 4 GB work.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace sp {

constexpr int32_t kShardMagic = 20240520;
constexpr size_t kShardHeaderBytes = 1024;

struct ShardStats {
  int64_t num_tokens = 0;
  int64_t num_documents = 0;  // number of BOS tokens
  int64_t min_token = 0, max_token = 0;
};

// A read-only, memory-mapped, validated shard. Opening checks the magic, the version, that the file size
// agrees with the header, and (when vocab_size > 0) that every token id is < vocab_size; any failure
// throws an Error naming the file and the byte offset.
class Shard {
public:
  Shard(const std::string& path, int64_t vocab_size, int64_t bos_token_id);
  ~Shard();
  Shard(Shard&& other) noexcept;
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;
  Shard& operator=(Shard&&) = delete;

  const std::string& path() const { return path_; }
  int version() const { return version_; }
  int64_t size() const { return stats_.num_tokens; }
  const ShardStats& stats() const { return stats_; }

  // Copies tokens [start, start + out.size()) as int32.
  void read(int64_t start, std::span<int32_t> out) const;
  int32_t at(int64_t i) const;

private:
  std::string path_;
  int version_ = 0;
  ShardStats stats_;
  const unsigned char* map_ = nullptr;  // whole file
  size_t map_bytes_ = 0;
};

// Writes a shard atomically (to PATH.tmp, fsync, rename). Version 1 (uint16) when every token fits,
// otherwise 2; `version` forces one.
void write_shard(const std::string& path, std::span<const int32_t> tokens, int version = 0);

}  // namespace sp
