// Host conversions between fp32 and the 16-bit float formats of tensor files and reduced-precision
// all-reduces: bf16 (fp32's upper half) and IEEE fp16. Little-endian bit patterns, no hardware needed.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace sp {

inline float bf16_to_float(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even; NaN stays NaN (its quiet bit is kept when the payload would round away).
inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (std::isnan(f)) return uint16_t((u >> 16) | 0x40);
  u += 0x7FFF + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}

inline float fp16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h >> 15) << 31, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  float mag;
  if (exp == 0) mag = std::ldexp(float(mant), -24);                 // zero and subnormals
  else if (exp == 31) mag = mant ? NAN : INFINITY;
  else mag = std::ldexp(float(mant | 0x400), int(exp) - 25);
  uint32_t u;
  std::memcpy(&u, &mag, 4);
  u |= sign;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even; overflow to infinity, NaN stays NaN. Subnormals are kept (units of 2^-24).
inline uint16_t float_to_fp16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000);
  const uint32_t a = u & 0x7FFFFFFF;
  if (a > 0x7F800000) return uint16_t(sign | 0x7E00);
  if (a >= 0x477FF000) return uint16_t(sign | 0x7C00);  // |f| >= 65520 rounds past 65504
  if (a >= 0x38800000) {                                // normal: >= 2^-14
    uint32_t r = a - (112u << 23);                      // exponent bias 127 -> 15
    r += 0xFFF + ((r >> 13) & 1);
    return uint16_t(sign | (r >> 13));
  }
  return uint16_t(sign | uint16_t(std::nearbyint(std::fabs(f) * 16777216.0f)));  // exact product, then RNE
}

}  // namespace sp
