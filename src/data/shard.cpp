#include "data/shard.h"

#include "core/check.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

namespace sp {

namespace {

int32_t read_le_i32(const unsigned char* p) {
  return int32_t(uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24);
}

int64_t token_at(const unsigned char* data, int version, int64_t i) {
  if (version == 1) {
    const unsigned char* p = data + size_t(i) * 2;
    return int64_t(p[0] | p[1] << 8);
  }
  const unsigned char* p = data + size_t(i) * 4;
  return int64_t(uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24);
}

const char* kRemake = "re-create it with scripts/prepare_data.py";

}  // namespace

Shard::Shard(const std::string& path, int64_t vocab_size, int64_t bos_token_id) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("shard {}: cannot open ({})", path, std::strerror(errno));
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("shard {}: not a regular file", path);
  }
  const size_t file_bytes = size_t(st.st_size);
  if (file_bytes < kShardHeaderBytes) {
    ::close(fd);
    fail("shard {}: file is {} bytes, shorter than the {}-byte header; the file is truncated or not a token "
         "shard: {}", path, file_bytes, kShardHeaderBytes, kRemake);
  }
  void* m = ::mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) fail("shard {}: mmap failed ({})", path, std::strerror(errno));
  map_ = static_cast<const unsigned char*>(m);
  map_bytes_ = file_bytes;

  try {
    const int32_t magic = read_le_i32(map_), version = read_le_i32(map_ + 4), count = read_le_i32(map_ + 8);
    if (magic != kShardMagic)
      fail("shard {}: bad magic {} at byte offset 0 (expected {}); not a token shard: {}", path, magic,
           kShardMagic, kRemake);
    if (version != 1 && version != 2)
      fail("shard {}: unsupported version {} at byte offset 4 (expected 1 for uint16 or 2 for uint32 tokens)",
           path, version);
    if (count < 0) fail("shard {}: negative token count {} at byte offset 8", path, count);
    version_ = version;
    const size_t token_bytes = version == 1 ? 2 : 4;
    const size_t expected = kShardHeaderBytes + size_t(count) * token_bytes;
    if (file_bytes != expected)
      fail("shard {}: header (byte offset 8) says {} tokens, so the file should be {} bytes, but it is {} bytes; "
           "the file is {}: {}", path, count, expected, file_bytes,
           file_bytes < expected ? "truncated" : "longer than its header says", kRemake);

    // One pass for the statistics and the range check.
    const unsigned char* data = map_ + kShardHeaderBytes;
    int64_t lo = INT64_MAX, hi = INT64_MIN, docs = 0;
#pragma omp parallel for reduction(min : lo) reduction(max : hi) reduction(+ : docs) schedule(static)
    for (int64_t i = 0; i < count; ++i) {
      int64_t t = token_at(data, version, i);
      lo = std::min(lo, t);
      hi = std::max(hi, t);
      docs += t == bos_token_id;
    }
    stats_ = ShardStats{count, docs, count ? lo : 0, count ? hi : 0};
    if (vocab_size > 0 && count > 0 && hi >= vocab_size) {
      for (int64_t i = 0; i < count; ++i) {
        int64_t t = token_at(data, version, i);
        if (t >= vocab_size)
          fail("shard {}: token id {} at byte offset {} (token {}) is >= vocab_size {}; the shard was made "
               "with another tokenizer, or model.vocab_size is wrong", path, t,
               kShardHeaderBytes + size_t(i) * token_bytes, i, vocab_size);
      }
    }
  } catch (...) {
    ::munmap(const_cast<unsigned char*>(map_), map_bytes_);
    map_ = nullptr;
    throw;
  }
}

Shard::Shard(Shard&& o) noexcept
    : path_(std::move(o.path_)), version_(o.version_), stats_(o.stats_), map_(o.map_), map_bytes_(o.map_bytes_) {
  o.map_ = nullptr;
  o.map_bytes_ = 0;
}

Shard::~Shard() {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), map_bytes_);
}

void Shard::read(int64_t start, std::span<int32_t> out) const {
  SP_ASSERT(start >= 0 && start + int64_t(out.size()) <= stats_.num_tokens, "read [{}, {}) of {} tokens",
            start, start + int64_t(out.size()), stats_.num_tokens);
  const unsigned char* data = map_ + kShardHeaderBytes;
  for (size_t i = 0; i < out.size(); ++i) out[i] = int32_t(token_at(data, version_, start + int64_t(i)));
}

int32_t Shard::at(int64_t i) const {
  int32_t t;
  read(i, std::span<int32_t>(&t, 1));
  return t;
}

void write_shard(const std::string& path, std::span<const int32_t> tokens, int version) {
  if (tokens.size() > size_t(INT32_MAX)) fail("shard {}: {} tokens exceed the format's int32 count", path, tokens.size());
  if (version == 0) {
    version = 1;
    for (int32_t t : tokens) if (t < 0 || t > 0xFFFF) { version = 2; break; }
  }
  SP_ASSERT(version == 1 || version == 2, "shard version {}", version);
  std::vector<unsigned char> bytes(kShardHeaderBytes + tokens.size() * (version == 1 ? 2 : 4), 0);
  auto put32 = [&](size_t at, uint32_t v) { for (int b = 0; b < 4; ++b) bytes[at + b] = (v >> (8 * b)) & 0xFF; };
  put32(0, uint32_t(kShardMagic));
  put32(4, uint32_t(version));
  put32(8, uint32_t(tokens.size()));
  for (size_t i = 0; i < tokens.size(); ++i) {
    uint32_t t = uint32_t(tokens[i]);
    if (version == 1) {
      SP_ASSERT(t <= 0xFFFF, "token {} does not fit uint16", t);
      bytes[kShardHeaderBytes + 2 * i] = t & 0xFF;
      bytes[kShardHeaderBytes + 2 * i + 1] = (t >> 8) & 0xFF;
    } else {
      put32(kShardHeaderBytes + 4 * i, t);
    }
  }
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail("shard {}: cannot create ({})", tmp, std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail("shard {}: write failed ({})", tmp, std::strerror(e));
    }
    done += size_t(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    fail("shard {}: flushing to disk failed ({})", tmp, std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail("shard {}: rename from {} failed ({})", path, tmp, ec.message());
}

}  // namespace sp
