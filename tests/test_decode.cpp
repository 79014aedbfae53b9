// Inference with a key/value cache: the ops at an offset (attention with a query offset, RoPE and SSMax from a
// start position) against the whole-sequence ops, the cached decoder
// against Model::forward at every step (every normaliser, SSMax, GQA, tied embeddings), and sampling.
//
// Tolerances, stated once: in double precision the cached path and the full pass differ only in summation
// order, so logits agree to 1e-9 of their scale; in float the same holds to 1e-4 (a few hundred ulps of
// the O(10) logits of these deliberately sharp random models). RoPE and SSMax at an offset use the table
// arithmetic of the whole-sequence ops and must match them bit for bit.
#include "backend/backend.h"
#include "config/config.h"
#include "core/rng.h"
#include "cpu/attention.h"
#include "cpu/rope.h"
#include "cpu/ssmax.h"
#include "model/decode.h"
#include "model/model.h"
#include "train/sample.h"

#include "test_util.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

using namespace sp;

namespace {

constexpr double kF64Tol = 1e-9;
constexpr double kF32Tol = 1e-4;

std::vector<double> randn(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<double> x(n);
  for (auto& e : x) e = double(float(rng.normal()));  // representable in float too
  return x;
}

// max |a - b| / max(max |b|, 1)
using test::random_tokens;

ModelConfig tiny_model(const std::string& attention, bool ssmax, int64_t kv_heads, bool tied = false,
                       bool gate = false) {
  return test::tiny_model_config(
      {.attention = attention, .ssmax = ssmax, .gate = gate, .kv_heads = kv_heads, .tied = tied});
}

double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  double err = 0, scale = 1;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return err / scale;
}

// Logits (V) of the last position of seq, from a fresh whole-sequence forward pass.
std::vector<double> full_logits(Model& m, Activations& a, std::span<const int32_t> seq) {
  std::vector<float> l(size_t(m.config().vocab_size));
  m.forward(a, seq, 1, int64_t(seq.size()));
  m.last_logits(a, l);
  return {l.begin(), l.end()};
}

}  // namespace

TEST_CASE("attention with a query offset equals the naive reference on the last rows", "[unit]") {
  for (Normaliser norm : {Normaliser::Softmax, Normaliser::Softpick, Normaliser::Rectified, Normaliser::Softmax1,
                          Normaliser::Sink})
    for (int64_t Hkv : {4, 2, 1})
      for (int64_t n : {70, 1, 5, 67}) {
        INFO("normaliser " << int(norm) << " Hkv " << Hkv << " new rows " << n);
        const AttentionShape full{1, 70, 4, Hkv, 8, norm, 1e-6};
        AttentionShape s = full;
        s.q_offset = full.T - n;
        const size_t nq = size_t(full.T * full.H * full.D), nk = size_t(full.T * full.Hkv * full.D);
        const size_t first = size_t(s.q_offset);
        auto q = randn(nq, 1), k = randn(nk, 2), v = randn(nk, 3), sinks = randn(size_t(full.H), 4);
        const bool learned = norm == Normaliser::Sink;
        std::vector<double> ref(nq), probs(size_t(full.T * full.T * full.H));
        attention_naive_forward(full, q.data(), k.data(), v.data(), learned ? sinks.data() : nullptr, ref.data(),
                                probs.data());
        const std::vector<double> ref_new(ref.begin() + std::ptrdiff_t(first * s.H * s.D), ref.end());
        std::vector<double> out(size_t(n * s.H * s.D), 7.0), lse(size_t(n * s.H));
        attention_forward(s, q.data() + first * s.H * s.D, k.data(), v.data(), learned ? sinks.data() : nullptr,
                          out.data(), lse.data());
        CHECK(rel_err(out, ref_new) < kF64Tol);
        for (size_t i = 0; i < out.size(); ++i)  // abstaining rows are exact zeros, as in the reference
          if (ref_new[i] == 0.0) REQUIRE(out[i] == 0.0);
        // float, against the same double reference
        std::vector<float> qf(q.begin(), q.end()), kf(k.begin(), k.end()), vf(v.begin(), v.end());
        std::vector<float> sf(sinks.begin(), sinks.end()), outf(out.size()), lsef(lse.size());
        attention_forward(s, qf.data() + first * s.H * s.D, kf.data(), vf.data(), learned ? sf.data() : nullptr,
                          outf.data(), lsef.data());
        CHECK(rel_err(std::vector<double>(outf.begin(), outf.end()), ref_new) < kF32Tol);
      }
}

TEST_CASE("RoPE and SSMax at an offset equal the whole-sequence ops bit for bit", "[unit]") {
  const size_t T = 50, H = 3, D = 8, pos0 = 37, n = T - pos0;
  auto x64 = randn(T * H * D, 4);
  std::vector<float> whole(x64.begin(), x64.end());
  std::vector<float> tail(whole.begin() + std::ptrdiff_t(pos0 * H * D), whole.end());
  rope_forward(whole.data(), 1, T, H, D, 10000.0, 0);
  rope_forward(tail.data(), 1, n, H, D, 10000.0, pos0);
  CHECK(std::equal(tail.begin(), tail.end(), whole.begin() + std::ptrdiff_t(pos0 * H * D)));

  const std::vector<float> s = {0.3f, -0.7f, 1.1f};
  std::vector<float> q(whole), out_whole(whole.size()), out_tail(tail.size());
  ssmax_forward(out_whole.data(), q.data(), s.data(), 1, T, H, D, 0);
  ssmax_forward(out_tail.data(), q.data() + pos0 * H * D, s.data(), 1, n, H, D, pos0);
  CHECK(std::equal(out_tail.begin(), out_tail.end(), out_whole.begin() + std::ptrdiff_t(pos0 * H * D)));
}

TEST_CASE("decoding with the KV cache reproduces the full forward pass at every step", "[model]") {
  struct Variant {
    const char* attention;
    bool ssmax;
    int64_t kv;
    bool tied;
    const char* backend;
    bool gate = false;  // model.attention_gate
  };
  for (Variant var : {Variant{"softmax", false, 4, false, "cpu-f64"}, Variant{"softpick", false, 2, false, "cpu-f64"},
                      Variant{"rectified", false, 2, false, "cpu-f64"}, Variant{"softpick", true, 1, true, "cpu-f64"},
                      Variant{"softmax", true, 2, false, "cpu-f64"}, Variant{"softpick", true, 2, false, "cpu"},
                      Variant{"rectified", false, 1, false, "cpu"}, Variant{"softmax1", false, 2, false, "cpu-f64"},
                      Variant{"sink", true, 2, false, "cpu-f64"}, Variant{"sink", false, 1, false, "cpu"},
                      Variant{"softmax", false, 2, false, "cpu-f64", true}, Variant{"softpick", true, 1, false, "cpu", true},
                      Variant{"sink", false, 2, true, "cpu-f64", true}}) {
    INFO(var.attention << (var.ssmax ? " + SSMax" : "") << (var.gate ? " + gate" : "") << ", kv heads " << var.kv
                       << (var.tied ? ", tied" : "") << ", " << var.backend);
    const double tol = std::string(var.backend) == "cpu" ? kF32Tol : kF64Tol;
    auto be = make_backend({var.backend, 2});
    Model model(tiny_model(var.attention, var.ssmax, var.kv, var.tied, var.gate), *be);
    model.init_weights(9);
    const int64_t T = 40, V = 23;
    Activations acts = model.make_activations(1, T);
    const std::vector<int32_t> seq = random_tokens(size_t(T), V, 17);
    Decoder dec(model, T, /*max_chunk=*/4);  // chunks of 4 exercise the splitting inside append

    // prefill 7 (logits of every row), single steps to 17, a chunk of 9 (logits of its last 5), then steps
    std::vector<std::vector<double>> got(static_cast<size_t>(T));  // logits per position, where asked
    auto run = [&](size_t from, size_t n, size_t want) {
      std::vector<float> l(want * size_t(V));
      dec.append(std::span<const int32_t>(seq).subspan(from, n), l);
      for (size_t r = 0; r < want; ++r)
        got[from + n - want + r].assign(l.begin() + std::ptrdiff_t(r * V), l.begin() + std::ptrdiff_t((r + 1) * V));
    };
    run(0, 7, 7);
    for (size_t p = 7; p < 17; ++p) run(p, 1, 1);
    run(17, 9, 5);
    for (size_t p = 26; p < size_t(T); ++p) run(p, 1, 1);
    CHECK(dec.length() == T);
    for (size_t p = 0; p < size_t(T); ++p) {
      if (got[p].empty()) continue;  // 17..20: logits not requested
      INFO("position " << p);
      CHECK(rel_err(got[p], full_logits(model, acts, std::span<const int32_t>(seq).first(p + 1))) < tol);
    }

    // rewind to 12 and continue with other tokens: the forgotten positions must not leak in
    dec.truncate(12);
    std::vector<int32_t> alt(seq.begin(), seq.begin() + 12);
    for (int32_t t : {5, 0, 22}) alt.push_back(t);
    std::vector<float> l(3 * size_t(V));
    dec.append(std::span<const int32_t>(alt).subspan(12), l);
    const std::vector<double> last(l.end() - V, l.end());
    CHECK(rel_err(last, full_logits(model, acts, alt)) < tol);
    model.free_activations(acts);
  }
}

TEST_CASE("the decoder's fused loss equals the loss of the full forward pass", "[model]") {
  auto be = make_backend({"cpu-f64", 2});
  Model model(tiny_model("softpick", true, 2), *be);
  model.init_weights(3);
  const int64_t T = 30, V = 23;
  auto seq = random_tokens(size_t(T), V, 5), targets = random_tokens(size_t(T), V, 6);
  for (size_t i = 0; i < targets.size(); i += 3) targets[i] = -1;  // ignored rows
  Activations acts = model.make_activations(1, T);
  model.forward(acts, seq, 1, T);
  model.loss(acts, targets, false, 0);
  const LossSum full = model.take_loss(acts);
  Decoder dec(model, T, 8);
  dec.append_scored(seq, targets);
  const LossSum cached = dec.take_loss();
  CHECK(cached.count == full.count);
  CHECK(cached.sum == Approx(full.sum).epsilon(kF64Tol));
  model.free_activations(acts);
}

TEST_CASE("greedy generation with the cache equals greedy recomputation and seeds reproduce", "[model]") {
  auto be = make_backend({"cpu", 2});
  Model model(tiny_model("softpick", false, 2), *be);
  model.init_weights(21);
  const int64_t T = 32, V = 23;
  Activations acts = model.make_activations(1, T);
  Decoder dec(model, T);
  const std::vector<int32_t> prompt = {1, 7, 3};
  SampleOptions greedy;
  greedy.temperature = 0;
  greedy.max_new_tokens = 20;
  const Generation g = generate(dec, prompt, greedy);
  REQUIRE(g.ids.size() == 20);
  // the same by recomputing the whole sequence for every token
  std::vector<int32_t> seq = prompt;
  for (int32_t id : g.ids) {
    const auto l = full_logits(model, acts, seq);
    const int32_t best = int32_t(std::max_element(l.begin(), l.end()) - l.begin());
    CHECK(id == best);
    seq.push_back(best);
  }
  CHECK(generate(dec, prompt, greedy).ids == g.ids);

  SampleOptions s;
  s.max_new_tokens = 25;
  s.temperature = 1.0;
  s.top_k = 0;
  s.seed = 7;
  const auto a = generate(dec, prompt, s).ids, b = generate(dec, prompt, s).ids;
  CHECK(a == b);
  s.seed = 8;
  CHECK(generate(dec, prompt, s).ids != a);
  for (int32_t id : a) CHECK((id >= 0 && id < V));
  model.free_activations(acts);
}

TEST_CASE("temperature and top-k and top-p pick from the distributions they should", "[unit]") {
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  SampleOptions o;
  o.top_k = 0;
  o.temperature = 1.0;
  Rng rng(1);
  int counts[3] = {0, 0, 0};
  const int n = 20000;
  for (int i = 0; i < n; ++i) counts[pick_token(logits, o, rng)]++;
  CHECK(counts[0] / double(n) == Approx(0.5).margin(0.02));
  CHECK(counts[1] / double(n) == Approx(0.3).margin(0.02));
  CHECK(counts[2] / double(n) == Approx(0.2).margin(0.02));
  o.top_p = 0.7;  // the nucleus is {0, 1}: 0.5 alone is short of 0.7
  for (int i = 0; i < 2000; ++i) CHECK(pick_token(logits, o, rng) != 2);
  o.top_p = 1.0;
  o.top_k = 1;  // top-1 is greedy
  for (int i = 0; i < 100; ++i) CHECK(pick_token(logits, o, rng) == 0);
  o.top_k = 0;
  o.temperature = 0;  // greedy; equal maxima give the lowest id
  CHECK(pick_token(std::vector<float>{1, 3, 3}, o, rng) == 1);
}

TEST_CASE("a full context stops generation or slides it", "[model]") {
  auto be = make_backend({"cpu", 2});
  Model model(tiny_model("softmax", false, 4), *be);
  model.init_weights(2);
  Decoder dec(model, 8);
  SampleOptions o;
  o.temperature = 0;
  o.max_new_tokens = 30;
  o.slide = false;
  const std::vector<int32_t> prompt = {1, 2, 3};
  Generation g = generate(dec, prompt, o);
  CHECK(g.stop == StopReason::ContextFull);
  CHECK(g.ids.size() == 6);  // positions 3..7 are fed; the token predicted from position 7 ends it
  o.slide = true;
  g = generate(dec, prompt, o);
  CHECK(g.stop == StopReason::MaxTokens);
  CHECK(g.ids.size() == 30);
  CHECK(g.slides > 0);
  o.stop_tokens = {g.ids[4]};
  g = generate(dec, prompt, o);
  CHECK(g.stop == StopReason::StopToken);
  CHECK(g.ids.size() <= 5);
  CHECK_THROWS_WITH(generate(dec, std::vector<int32_t>(9, 1), o), Catch::Contains("the context holds 8"));
  CHECK_THROWS_WITH(generate(dec, std::vector<int32_t>{1, 99}, o), Catch::Contains("outside the vocabulary"));
}
