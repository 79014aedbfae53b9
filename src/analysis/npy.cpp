#include "analysis/npy.h"

#include "core/check.h"

#include <bit>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace sp {

// The values are written as they sit in memory and declared '<f4'.
static_assert(std::endian::native == std::endian::little, "write_npy assumes a little-endian host");

void write_npy(const std::string& path, std::span<const float> data, const std::vector<int64_t>& shape) {
  size_t numel = 1;
  std::string dims;  // "R, C"; a 1-d shape needs Python's trailing comma: "N,"
  for (size_t i = 0; i < shape.size(); ++i) {
    SP_ASSERT(shape[i] >= 0, "negative dimension {} for {}", shape[i], path);
    numel *= size_t(shape[i]);
    dims += (i ? ", " : "") + std::to_string(shape[i]);
  }
  if (shape.size() == 1) dims += ",";
  SP_ASSERT(numel == data.size(), "{}: shape holds {} values, data {}", path, numel, data.size());
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  constexpr size_t kPreamble = 10;  // magic (6) + version (2) + header length (2)
  const size_t padded = (kPreamble + header.size() + 1 + 63) / 64 * 64;
  header.append(padded - kPreamble - header.size() - 1, ' ');
  header += '\n';
  if (header.size() > 65535) fail("{}: shape too long for an .npy v1.0 header", path);

  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("{}: cannot create it; check that the directory exists and is writable", tmp);
    const uint16_t len = uint16_t(header.size());
    out.write("\x93NUMPY\x01\x00", 8);
    out.put(char(len & 0xFF));
    out.put(char(len >> 8));
    out.write(header.data(), std::streamsize(header.size()));
    out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size_bytes()));
    out.flush();
    if (!out) fail("{}: write failed (disk full?)", tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail("{}: cannot rename {} into place ({})", path, tmp, ec.message());
}

}  // namespace sp
