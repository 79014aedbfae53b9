// The safetensors format (as the Hugging Face `safetensors` package reads it): an 8-byte little-endian
// header length N, N bytes of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
// {string: string}}, then the tensor bytes, offsets relative to the end of the header. Checkpoints are F32;
// exports may be BF16, and imports read F32, BF16 and F16 (each converted to fp32 on reading). Packed
// quantized weights (quant/quantize.h) are U8 codes with F16 or F32 scales, written as raw bytes.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace sp {

enum class TensorDtype { F32, BF16, F16, U8 };
const char* dtype_name(TensorDtype d);  // "F32", "BF16", "F16", "U8": the header's spelling
size_t dtype_bytes(TensorDtype d);

struct TensorRef {
  std::string name;
  std::vector<int64_t> shape;
  const float* data;  // shape's product elements, host memory
};

// Writes and fsyncs a safetensors file (the caller decides the final name; see checkpoint.cpp).
// Throws an Error naming the path on any I/O failure (full disk, read-only file system).
// `dtype` is the stored type: F32 as given, BF16 rounded to nearest even (F16 is not written).
void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata = {},
                       TensorDtype dtype = TensorDtype::F32);

// A tensor already in its stored form: shape's product elements of `dtype`, little-endian.
struct RawTensor {
  std::string name;
  TensorDtype dtype = TensorDtype::U8;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};
void write_safetensors(const std::string& path, const std::vector<RawTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

struct TensorInfo {
  std::vector<int64_t> shape;
  TensorDtype dtype = TensorDtype::F32;
  uint64_t begin = 0, end = 0;  // byte range within the data section
  uint64_t numel() const;
};

// A validated safetensors file: header parsed, every range inside the file and matching its shape, every
// dtype F32, BF16, F16 or U8 (others are refused naming the tensor).
class SafetensorsReader {
public:
  explicit SafetensorsReader(const std::string& path);
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Reads tensor `name` (which must have exactly out.size() elements) into out, converted to fp32.
  void read(const std::string& name, std::span<float> out) const;
  std::vector<uint8_t> read_bytes(const std::string& name) const;  // the stored bytes, as they are
  const std::string& path() const { return path_; }

private:
  std::string path_;
  uint64_t data_start_ = 0;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace sp
