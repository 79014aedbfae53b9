#include "checkpoint/safetensors.h"

#include "core/check.h"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace sp {

namespace {

// Writes all bytes or throws, naming the file and the reason (ENOSPC, EROFS, ...).
void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("{}: write failed ({})", path, std::strerror(errno));
    }
    p += w;
    n -= size_t(w);
  }
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    uint64_t n = 1;
    for (int64_t d : t.shape) n *= uint64_t(d);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + 4 * n}}};
    offset += 4 * n;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // pad so the data section starts 8-byte aligned
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));

  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail("{}: cannot create ({})", path, std::strerror(errno));
  try {
    write_all(fd, len, 8, path);
    write_all(fd, text.data(), text.size(), path);
    for (const auto& t : tensors) {
      uint64_t n = 1;
      for (int64_t d : t.shape) n *= uint64_t(d);
      write_all(fd, t.data, size_t(n) * 4, path);  // little-endian hosts only (x86-64, aarch64)
    }
    if (::fsync(fd) != 0) fail("{}: fsync failed ({})", path, std::strerror(errno));
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) fail("{}: close failed ({})", path, std::strerror(errno));
}

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path) {
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) fail("{}: cannot read ({})", path, ec.message());
  std::ifstream in(path, std::ios::binary);
  uint8_t len[8];
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(len), 8))
    fail("{}: {} bytes, too short for a safetensors header; the file is truncated", path, file_size);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(len[i]) << (8 * i);
  if (n > file_size - 8 || n > (uint64_t(1) << 30))
    fail("{}: header length {} does not fit the file of {} bytes; the file is truncated or not safetensors",
         path, n, file_size);
  std::string text(n, '\0');
  in.read(text.data(), std::streamsize(n));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: the header is not valid JSON ({}); the file is damaged", path, e.what());
  }
  data_start_ = 8 + n;
  const uint64_t data_size = file_size - data_start_;
  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      for (auto& [k, v] : info.items()) metadata_[k] = v.is_string() ? v.get<std::string>() : v.dump();
      continue;
    }
    try {
      if (info.at("dtype") != "F32")
        fail("{}: tensor {} has dtype {}, only F32 is supported", path, name, info.at("dtype").dump());
      TensorInfo t;
      t.shape = info.at("shape").get<std::vector<int64_t>>();
      auto off = info.at("data_offsets").get<std::vector<uint64_t>>();
      if (off.size() != 2) fail("{}: tensor {}: data_offsets must have 2 entries", path, name);
      t.begin = off[0];
      t.end = off[1];
      uint64_t numel = 1;
      for (int64_t d : t.shape) numel *= uint64_t(d);
      if (t.end < t.begin || t.end - t.begin != 4 * numel)
        fail("{}: tensor {}: data_offsets [{}, {}] do not match its shape", path, name, t.begin, t.end);
      if (t.end > data_size)
        fail("{}: tensor {} ends at byte {} of the data, but the file holds only {} data bytes; the file is "
             "truncated", path, name, t.end, data_size);
      tensors_[name] = t;
    } catch (const nlohmann::json::exception& e) {
      fail("{}: malformed entry for tensor {} ({})", path, name, e.what());
    }
  }
}

void SafetensorsReader::read(const std::string& name, std::span<float> out) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("{}: no tensor named {}", path_, name);
  const TensorInfo& t = it->second;
  if ((t.end - t.begin) / 4 != out.size())
    fail("{}: tensor {} has {} elements, expected {}", path_, name, (t.end - t.begin) / 4, out.size());
  std::ifstream in(path_, std::ios::binary);
  in.seekg(std::streamoff(data_start_ + t.begin));
  if (!in.read(reinterpret_cast<char*>(out.data()), std::streamsize(out.size() * 4)))
    fail("{}: tensor {}: read failed; the file is truncated", path_, name);
}

}  // namespace sp
