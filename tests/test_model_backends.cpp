// The whole model on the CUDA backend against the CPU (fp32), from the same fp32 weights: one training step
// (forward, loss, backward), for every attention variant. On the CUDA execution harness without a GPU
// (label cuda), on the device with one (gpu). And the cached decoder on the CUDA backend against its own
// whole-sequence forward pass.
//
// Two comparisons, with their tolerances:
//   * "cuda-f32", the CUDA code path with fp32 weights and activations: the loss within 1e-5 relative and
//     every parameter gradient with cosine similarity > 0.99999 to the CPU's (only summation order differs).
//   * "cuda", the training precision (bf16 weights and activations, fp32 inside each op): the loss within
//     kTolBF16 relative; the gradients' cosine similarity > 0.999 for softmax, softmax1 and learned sinks
//     (smooth in the scores). Softpick and rectified softmax are discontinuous at a score of exactly 0
//     (softpick's gradient through its step and sign terms, rectified softmax's output itself), so bf16
//     rounding that moves a near-zero score across 0 changes a few terms by O(1): measured minima over the
//     tensors 0.9965 (softpick) and 0.975 (rectified); the bounds are 0.99 and 0.95.
#include <catch2/catch.hpp>

#include "backend/backend.h"
#include "model/decode.h"
#include "model/model.h"
#include "test_util.h"
#include "train/optimizer.h"

#ifdef SOFTPICK_CUDA_EMU
#include "streams.h"  // the harness's count of host waits
#endif

#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <vector>

#ifdef SOFTPICK_HAVE_CUDA_BACKEND

#ifdef SOFTPICK_CUDA_EMU
#define SP_CUDA_TAG "[cuda]"
#else
#define SP_CUDA_TAG "[gpu]"
#endif

namespace {

using sp::Backend;

constexpr double kTolBF16 = 2.5 / 256;  // as in tests/test_backend_ops.cpp
constexpr double kMinCosine = 0.999;

struct StepResult {
  double loss = 0;
  std::map<std::string, std::vector<float>> grads;  // by parameter name
};

// One forward + loss + backward of `cfg` on `be` from the init of `seed`, on fixed tokens.
StepResult one_step(const sp::ModelConfig& cfg, Backend& be, int64_t B, int64_t T,
                    sp::Recompute recompute = sp::Recompute::None) {
  sp::Model model(cfg, be);
  sp::OptimizerConfig oc;
  sp::AdamW opt(oc, model);
  opt.set_master_weights(model.initial_weights(7));
  sp::Activations acts = model.make_activations(B, T, recompute);
  const auto tokens = sp::test::random_tokens(size_t(B * T), cfg.vocab_size, 11);
  auto targets = sp::test::random_tokens(size_t(B * T), cfg.vocab_size, 12);
  targets[3] = -1;  // an ignored target
  model.zero_grads();
  model.forward(acts, tokens, B, T);
  model.loss(acts, targets, /*with_grad=*/true, 1.0 / double(B * T));
  model.backward(acts);
  StepResult r;
  const sp::LossSum l = model.take_loss(acts);
  r.loss = l.sum / double(l.count);
  std::vector<float> all(model.grads().numel);
  be.download(std::span<float>(all), model.grads());
  for (const auto& s : model.specs())
    r.grads[s.name] = std::vector<float>(all.begin() + long(s.offset), all.begin() + long(s.offset + s.numel));
  model.free_activations(acts);
  return r;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return aa == 0 && bb == 0 ? 1.0 : ab / std::sqrt(aa * bb);
}

sp::ModelConfig small_config(const char* attention, bool ssmax, bool gate = false) {
  sp::test::TinyModel t;
  t.attention = attention;
  t.ssmax = ssmax;
  t.gate = gate;
  t.hidden = 128;  // 4 heads of 32 (the CUDA attention takes head dims 32, 64 and 128), 2 kv heads
  t.ffn = 192;
  t.vocab = 97;
  t.init = 0.05;
  return sp::test::tiny_model_config(t);
}

// Every variant on `device` against the CPU: the loss within loss_tol, each tensor's gradient cosine above
// min_cosine(attention).
template <class MinCosine>
void compare_step(const std::string& device, double loss_tol, MinCosine min_cosine) {
  auto cpu = sp::make_backend({"cpu", 2});
  auto cuda = sp::make_backend({device, 2});
  for (const char* attention : {"softmax", "softpick", "rectified", "softmax1", "sink"})
    for (auto [ssmax, gate] : {std::pair{false, false}, {true, false}, {false, true}}) {
      const sp::ModelConfig cfg = small_config(attention, ssmax, gate);
      const StepResult ref = one_step(cfg, *cpu, 2, 24), got = one_step(cfg, *cuda, 2, 24);
      INFO(device << ": " << attention << (ssmax ? " + SSMax" : "") << (gate ? " + gate" : ""));
      CAPTURE(got.loss, ref.loss);
      CHECK(std::abs(got.loss - ref.loss) <= loss_tol * ref.loss);
      for (const auto& [name, g] : ref.grads) {
        const double c = cosine(got.grads.at(name), g);
        INFO(name);
        CAPTURE(c);
        CHECK(c > min_cosine(std::string(attention)));
      }
    }
}

}  // namespace

TEST_CASE("model: recomputed activations on cuda give the same gradients bit for bit", SP_CUDA_TAG) {
  auto cuda = sp::make_backend({"cuda", 2});
  for (auto [ssmax, gate] : {std::pair{false, false}, {true, false}, {false, true}}) {
    const sp::ModelConfig cfg = small_config("softpick", ssmax, gate);
    const StepResult ref = one_step(cfg, *cuda, 2, 24);
    for (sp::Recompute r : {sp::Recompute::Attention, sp::Recompute::Full}) {
      INFO(sp::recompute_name(r) << (ssmax ? " + SSMax" : "") << (gate ? " + gate" : ""));
      const StepResult got = one_step(cfg, *cuda, 2, 24, r);
      CHECK(got.loss == ref.loss);
      for (const auto& [name, g] : ref.grads) {
        INFO(name);
        CHECK(got.grads.at(name) == g);
      }
    }
  }
}

TEST_CASE("model: a training step on cuda-f32 equals the cpu's up to summation order", SP_CUDA_TAG) {
  compare_step("cuda-f32", 1e-5, [](const std::string&) { return 0.99999; });
}

TEST_CASE("model: a training step on cuda (bf16) follows the cpu from the same weights", SP_CUDA_TAG) {
  compare_step("cuda", kTolBF16, [](const std::string& attention) {
    if (attention == "softpick") return 0.99;
    return attention == "rectified" ? 0.95 : 0.999;  // softmax, softmax1 and sinks are smooth
  });
}

// The cached decoder on the CUDA backend against a whole-sequence forward pass on the same backend, every
// normaliser: a prefill of 260 positions, then single steps, which at this cache length take the split-K
// decode kernel. Logits (V) of the last position, max|a - b| / max(max|b|, 1): fp32 within 1e-4 (summation
// order, as tests/test_decode.cpp); bf16 within 3 kTolBF16 (the two paths round different intermediates to
// bf16: the decode kernel's weights are fp32, the training kernel's are bf16 tensor-core operands).
TEST_CASE("model: decoding with the KV cache on cuda reproduces the full forward pass", SP_CUDA_TAG) {
  for (const char* device : {"cuda-f32", "cuda"}) {
    auto be = sp::make_backend({device, 2});
    const double tol = std::string(device) == "cuda" ? 3 * kTolBF16 : 1e-4;
    for (auto [attention, gate] : {std::pair{"softmax", false}, {"softpick", false}, {"rectified", false},
                                   {"softmax1", false}, {"sink", false}, {"softpick", true}}) {
      INFO(device << ": " << attention << (gate ? " + gate" : ""));
      const sp::ModelConfig cfg = small_config(attention, false, gate);
      sp::Model model(cfg, *be);
      model.init_weights(9);
      const int64_t T = 264, V = cfg.vocab_size;
      const auto seq = sp::test::random_tokens(size_t(T), V, 17);
      sp::Activations acts = model.make_activations(1, T);
      sp::Decoder dec(model, T);
      std::vector<float> got(static_cast<size_t>(V)), want(static_cast<size_t>(V));
      auto check_last = [&](int64_t n) {
        model.forward(acts, std::span<const int32_t>(seq).first(size_t(n)), 1, n);
        model.last_logits(acts, want);
        double err = 0, scale = 1;
        for (int64_t i = 0; i < V; ++i) {
          err = std::max(err, double(std::abs(got[size_t(i)] - want[size_t(i)])));
          scale = std::max(scale, double(std::abs(want[size_t(i)])));
        }
        INFO("position " << n - 1);
        CHECK(err / scale <= tol);
      };
      dec.append(std::span<const int32_t>(seq).first(260), got);
      check_last(260);
      for (int64_t p = 260; p < T; ++p) dec.append(std::span<const int32_t>(seq).subspan(size_t(p), 1), got);
      check_last(T);
      model.free_activations(acts);
    }
  }
}

#ifdef SOFTPICK_CUDA_EMU
// The harness counts the host's waits for unfinished device work (emu::host_waits). After a first step
// (in which scratch memory and the pinned upload slots grow), a training step of two micro-batches --
// uploads, forward, loss, backward, reduction, the norm and loss read, the update -- waits exactly once:
// at the read of the norm (the loss's read after it finds nothing left to run).
TEST_CASE("model: a training step on cuda waits for the device only at the read of the loss and norm", "[cuda]") {
  auto cuda = sp::make_backend({"cuda", 2});
  const sp::ModelConfig cfg = small_config("softpick", false);
  const int64_t B = 2, T = 24, accum = 2;
  sp::Model model(cfg, *cuda);
  sp::OptimizerConfig oc;
  sp::AdamW opt(oc, model);
  opt.set_master_weights(model.initial_weights(7));
  sp::Activations acts = model.make_activations(B, T, sp::Recompute::None);
  auto step = [&](uint64_t seed) {
    model.zero_grads();
    for (int64_t micro = 0; micro < accum; ++micro) {
      const auto tokens = sp::test::random_tokens(size_t(B * T), cfg.vocab_size, seed + 2 * uint64_t(micro));
      const auto targets = sp::test::random_tokens(size_t(B * T), cfg.vocab_size, seed + 2 * uint64_t(micro) + 1);
      model.forward(acts, tokens, B, T);
      model.loss(acts, targets, /*with_grad=*/true, 1.0 / double(B * T * accum));
      std::function<void(size_t)> reduce;
      if (micro == accum - 1) reduce = [&](size_t bucket) { opt.reduce_bucket(bucket); };
      model.backward(acts, reduce);
    }
    opt.finish_reduction();
    const double norm = opt.grad_norm();  // in the trainer's order (train_step)
    const sp::LossSum loss = model.take_loss(acts);
    opt.step(1e-3, 1, 1.0);
    return std::isfinite(loss.sum) && loss.count == B * T * accum && std::isfinite(norm) && norm > 0;
  };
  REQUIRE(step(100));
  for (uint64_t seed : {200, 300}) {
    const unsigned long long before = emu::host_waits();
    REQUIRE(step(seed));
    CHECK(emu::host_waits() - before == 1);
  }
  model.free_activations(acts);
}
#endif  // SOFTPICK_CUDA_EMU

#endif  // SOFTPICK_HAVE_CUDA_BACKEND
