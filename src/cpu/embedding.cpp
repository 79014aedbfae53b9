// Token embedding on the CPU, forward (row gather) and backward (row scatter-add).
// Inside this file F is the element type (float or double). Convention (embedding.h): dwte +=.
// Token ids are trusted to lie in [0, V): the data loader validates them when it opens a shard.
#include "cpu/embedding.h"

#include <algorithm>

namespace sp {
namespace {

// The backward splits the C columns into blocks of kColBlock and gives each block to one thread, which
// walks the tokens in order: a token repeated in the batch adds to the same dwte row from one thread only,
// so there are no write races and every element is summed in token order, whatever the thread count.
// 32 elements span whole 64-byte cache lines in float and double, so threads rarely share a line.
constexpr size_t kColBlock = 32;

}  // namespace

template <class F>
void embedding_forward(F* out, const int32_t* tokens, const F* wte, size_t N, size_t C) {
#pragma omp parallel for schedule(static)
  for (size_t n = 0; n < N; n++) {
    const F* row = wte + size_t(tokens[n]) * C;  // (C)
    std::copy(row, row + C, out + n * C);
  }
}

template <class F>
void embedding_backward(F* dwte, const F* dout, const int32_t* tokens, size_t N, size_t C) {
  const size_t nblocks = (C + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static)
  for (size_t blk = 0; blk < nblocks; blk++) {
    const size_t c0 = blk * kColBlock, c1 = std::min(C, c0 + kColBlock);
    for (size_t n = 0; n < N; n++) {
      F* drow = dwte + size_t(tokens[n]) * C;  // (C)
      const F* g = dout + n * C;               // (C)
      for (size_t c = c0; c < c1; c++) drow[c] += g[c];
    }
  }
}

template void embedding_forward<float>(float*, const int32_t*, const float*, size_t, size_t);
template void embedding_forward<double>(double*, const int32_t*, const double*, size_t, size_t);
template void embedding_backward<float>(float*, const float*, const int32_t*, size_t, size_t);
template void embedding_backward<double>(double*, const double*, const int32_t*, size_t, size_t);

}  // namespace sp
