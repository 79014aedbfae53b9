// Deterministic random numbers that are identical on every platform and trivially serialisable:
// a counter-based generator (splitmix64 over a 64-bit counter). Used for init, data order and sampling.
#pragma once

#include <cmath>
#include <cstdint>

namespace sp {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Mixes several values into one seed, so streams for (seed, epoch, shard) are independent.
inline uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c = 0) {
  return splitmix64(splitmix64(splitmix64(a) ^ b) ^ c);
}

class Rng {
public:
  explicit Rng(uint64_t seed = 0) : state_(seed) {}

  uint64_t next_u64() { return splitmix64(state_++); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }
  // Uniform integer in [0, n), unbiased (rejection of the short last block).
  uint64_t below(uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = next_u64(); while (x >= limit);
    return x % n;
  }
  // Standard normal by Box-Muller (one value per call, the second is discarded for simplicity).
  double normal() {
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

  uint64_t state() const { return state_; }
  void set_state(uint64_t s) { state_ = s; }

private:
  uint64_t state_;
};

}  // namespace sp
