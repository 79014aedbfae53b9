// Fake quantization of linear-layer inputs at evaluation: int8 and fp8 (e4m3) per row or per tensor, and
// LLM.int8's 16-bit outlier columns (ActQuantArgs in backend/op_args.h). Forward only: it is never trained
// through.
#pragma once

#include "backend/op_args.h"

#include <cstddef>

namespace sp {

// x (N, C), in place
template <class T>
void act_quant(T* x, size_t N, size_t C, const ActQuantArgs& a);

// The nearest value of a binary float format with `mantissa` bits, normal exponents down to `min_exp`
// (subnormals below) and largest value `max_value`, halves to even, saturating at +-max_value: e4m3 is
// (3, -6, 448), fp16 (10, -14, 65504).
template <class T>
T round_to_format(T v, int mantissa, int min_exp, T max_value);

}  // namespace sp
