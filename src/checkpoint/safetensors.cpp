#include "checkpoint/safetensors.h"

#include "core/bf16.h"
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

uint64_t product(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= uint64_t(d);
  return n;
}

}  // namespace

const char* dtype_name(TensorDtype d) {
  switch (d) {
    case TensorDtype::F32: return "F32";
    case TensorDtype::BF16: return "BF16";
    case TensorDtype::F16: return "F16";
    case TensorDtype::U8: return "U8";
  }
  return "?";
}

size_t dtype_bytes(TensorDtype d) { return d == TensorDtype::F32 ? 4 : d == TensorDtype::U8 ? 1 : 2; }

uint64_t TensorInfo::numel() const { return product(shape); }

namespace {

struct HeaderEntry {
  const std::string* name;
  TensorDtype dtype;
  const std::vector<int64_t>* shape;
};

// Writes the header of `entries`, then calls write_data(fd) for the tensor bytes in the same order, then
// fsyncs; an Error names the path on any failure.
template <class WriteData>
void write_tensor_file(const std::string& path, const std::vector<HeaderEntry>& entries,
                       const std::map<std::string, std::string>& metadata, WriteData write_data) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& e : entries) {
    const uint64_t bytes = dtype_bytes(e.dtype) * product(*e.shape);
    header[*e.name] = {{"dtype", dtype_name(e.dtype)}, {"shape", *e.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
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
    write_data(fd);
    if (::fsync(fd) != 0) fail("{}: fsync failed ({})", path, std::strerror(errno));
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) fail("{}: close failed ({})", path, std::strerror(errno));
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata, TensorDtype dtype) {
  SP_ASSERT(dtype == TensorDtype::F32 || dtype == TensorDtype::BF16, "{}: only F32 and BF16 are written from floats",
            path);
  std::vector<HeaderEntry> entries;
  for (const auto& t : tensors) entries.push_back({&t.name, dtype, &t.shape});
  write_tensor_file(path, entries, metadata, [&](int fd) {
    std::vector<uint16_t> half;
    for (const auto& t : tensors) {
      const size_t n = size_t(product(t.shape));
      if (dtype == TensorDtype::F32) {
        write_all(fd, t.data, n * 4, path);  // little-endian hosts only (x86-64, aarch64)
        continue;
      }
      half.resize(n);
      for (size_t i = 0; i < n; ++i) half[i] = float_to_bf16(t.data[i]);
      write_all(fd, half.data(), n * 2, path);
    }
  });
}

void write_safetensors(const std::string& path, const std::vector<RawTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<HeaderEntry> entries;
  for (const auto& t : tensors) {
    SP_ASSERT(t.bytes.size() == dtype_bytes(t.dtype) * product(t.shape), "{}: tensor {} has {} bytes for its shape",
              path, t.name, t.bytes.size());
    entries.push_back({&t.name, t.dtype, &t.shape});
  }
  write_tensor_file(path, entries, metadata, [&](int fd) {
    for (const auto& t : tensors) write_all(fd, t.bytes.data(), t.bytes.size(), path);
  });
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
      TensorInfo t;
      const std::string dtype = info.at("dtype").get<std::string>();
      if (dtype == "F32") t.dtype = TensorDtype::F32;
      else if (dtype == "BF16") t.dtype = TensorDtype::BF16;
      else if (dtype == "F16") t.dtype = TensorDtype::F16;
      else if (dtype == "U8") t.dtype = TensorDtype::U8;
      else fail("{}: tensor {} has dtype {}; only F32, BF16, F16 and U8 are read (convert the file to one of them)",
                path, name, dtype);
      t.shape = info.at("shape").get<std::vector<int64_t>>();
      uint64_t numel = 1;
      for (int64_t d : t.shape)
        if (d < 0 || __builtin_mul_overflow(numel, uint64_t(d), &numel) || numel > (uint64_t(1) << 50))
          fail("{}: tensor {} has an impossible shape {}", path, name, nlohmann::json(t.shape).dump());
      auto off = info.at("data_offsets").get<std::vector<uint64_t>>();
      if (off.size() != 2) fail("{}: tensor {}: data_offsets must have 2 entries", path, name);
      t.begin = off[0];
      t.end = off[1];
      if (t.end < t.begin || t.end - t.begin != dtype_bytes(t.dtype) * t.numel())
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

std::vector<uint8_t> SafetensorsReader::read_bytes(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("{}: no tensor named {}", path_, name);
  std::vector<uint8_t> out(size_t(it->second.end - it->second.begin));
  std::ifstream in(path_, std::ios::binary);
  in.seekg(std::streamoff(data_start_ + it->second.begin));
  if (!in.read(reinterpret_cast<char*>(out.data()), std::streamsize(out.size())))
    fail("{}: tensor {}: read failed; the file is truncated", path_, name);
  return out;
}

void SafetensorsReader::read(const std::string& name, std::span<float> out) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("{}: no tensor named {}", path_, name);
  const TensorInfo& t = it->second;
  if (t.numel() != out.size())
    fail("{}: tensor {} has {} elements, expected {}", path_, name, t.numel(), out.size());
  if (t.dtype == TensorDtype::F32) {
    std::ifstream in(path_, std::ios::binary);
    in.seekg(std::streamoff(data_start_ + t.begin));
    if (!in.read(reinterpret_cast<char*>(out.data()), std::streamsize(out.size() * 4)))
      fail("{}: tensor {}: read failed; the file is truncated", path_, name);
    return;
  }
  const std::vector<uint8_t> raw = read_bytes(name);
  for (size_t i = 0; i < out.size(); ++i) {
    if (t.dtype == TensorDtype::U8) {
      out[i] = float(raw[i]);
      continue;
    }
    uint16_t h;
    std::memcpy(&h, &raw[2 * i], 2);
    out[i] = t.dtype == TensorDtype::BF16 ? bf16_to_float(h) : fp16_to_float(h);
  }
}

}  // namespace sp
