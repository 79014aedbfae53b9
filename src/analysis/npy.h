// NumPy .npy files (format version 1.0), so attention maps open with numpy.load() and nothing else:
//   "\x93NUMPY" 1 0, a little-endian uint16 header length, then a Python dict literal
//   {'descr': '<f4', 'fortran_order': False, 'shape': (R, C), } padded with spaces and ended by '\n' so
//   the data starts at a multiple of 64 bytes, then the float32 values in C order.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace sp {

// Writes a C-order float32 array of the given shape to `path` (via PATH.tmp and a rename, so a reader never
// sees half a file). An Error names the path if it cannot be written.
void write_npy(const std::string& path, std::span<const float> data, const std::vector<int64_t>& shape);

}  // namespace sp
