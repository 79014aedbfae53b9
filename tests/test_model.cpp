// The whole model: gradients against finite differences, the loss at initialisation, overfitting one
// batch, determinism, the activation tables. Tolerances: the gradient check runs in double precision, where central differences
// with h = 1e-5 agree with analytic gradients to about 1e-7 relative; we ask for 1e-5.
#include "backend/backend.h"
#include "config/config.h"
#include "core/rng.h"
#include "model/decode.h"
#include "model/model.h"
#include "train/optimizer.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>

using namespace sp;

namespace {

using test::random_tokens;

constexpr double kGradRelTol = 1e-5;
constexpr double kGradAbsTol = 1e-8;

// softpick adds eps after the max shift, so the function computed is relu(e^x - 1) / (sum |e^x - 1| +
// eps e^m): it depends on the row max m through eps, a dependence the kernels (like the paper's) do not
// differentiate (docs/attention.md). With eps = 0 both forms are the same function, and finite differences
// test the gradient exactly.
ModelConfig tiny_model(const std::string& attention, bool ssmax = false, bool tied = false, int64_t kv_heads = 2,
                       bool gate = false) {
  return test::tiny_model_config({.attention = attention, .ssmax = ssmax, .gate = gate, .kv_heads = kv_heads,
                                  .tied = tied, .softpick_eps = 0});
}

double mean_loss(Model& m, Activations& a, const std::vector<int32_t>& in, const std::vector<int32_t>& tgt,
                 int64_t B, int64_t T) {
  m.forward(a, in, B, T);
  m.loss(a, tgt, false, 0);
  const LossSum l = m.take_loss(a);
  return l.sum / double(l.count);
}

}  // namespace

TEST_CASE("whole-model gradients match finite differences (double precision)", "[model]") {
  struct Variant {
    const char* attention;
    bool ssmax, tied;
    int64_t kv_heads;
    bool gate = false;  // model.attention_gate
  };
  for (Variant v : {Variant{"softmax", false, false, 2}, Variant{"softpick", false, false, 2},
                    Variant{"rectified", false, false, 4}, Variant{"softpick", true, true, 1},
                    Variant{"softmax", true, false, 4}, Variant{"softmax1", false, false, 2},
                    Variant{"sink", false, false, 2}, Variant{"sink", true, true, 1},
                    Variant{"softmax", false, false, 2, true}, Variant{"softpick", true, false, 2, true},
                    Variant{"sink", false, true, 4, true}}) {
    INFO("attention " << v.attention << " ssmax " << v.ssmax << " tied " << v.tied << " kv " << v.kv_heads
                      << " gate " << v.gate);
    auto be = make_backend({"cpu-f64"});
    Model model(tiny_model(v.attention, v.ssmax, v.tied, v.kv_heads, v.gate), *be);
    model.init_weights(5);
    const int64_t B = 2, T = 7;
    Activations a = model.make_activations(B, T);
    auto in = random_tokens(size_t(B * T), 23, 11), tgt = random_tokens(size_t(B * T), 23, 12);

    model.zero_grads();
    model.forward(a, in, B, T);
    model.loss(a, tgt, true, 1.0 / double(B * T));
    model.backward(a);
    const LossSum l = model.take_loss(a);
    std::vector<double> params(model.params().numel), grads(model.grads().numel);
    be->download(std::span<double>(params), model.params());
    be->download(std::span<double>(grads), model.grads());
    CHECK(std::isfinite(l.sum));

    Rng pick(7);
    int checked = 0;
    for (const ParamSpec& s : model.specs()) {
      for (int j = 0; j < 6; ++j) {  // a few random entries of every tensor
        const size_t i = s.offset + size_t(pick.below(s.numel));
        const double h = 1e-5, orig = params[i];
        params[i] = orig + h;
        be->upload(model.params(), std::span<const double>(params));
        const double up = mean_loss(model, a, in, tgt, B, T);
        params[i] = orig - h;
        be->upload(model.params(), std::span<const double>(params));
        const double down = mean_loss(model, a, in, tgt, B, T);
        params[i] = orig;
        be->upload(model.params(), std::span<const double>(params));
        const double fd = (up - down) / (2 * h);
        INFO(s.name << " [" << i - s.offset << "] analytic " << grads[i] << " numeric " << fd);
        CHECK(std::fabs(grads[i] - fd) <= kGradAbsTol + kGradRelTol * std::fabs(fd));
        ++checked;
      }
    }
    CHECK(checked == 6 * int(model.specs().size()));
    model.free_activations(a);
  }
}

TEST_CASE("loss at initialisation is close to ln(vocab_size)", "[model]") {
  Config c;
  c.model.hidden_size = 64;
  c.model.num_hidden_layers = 2;
  c.model.num_heads = 4;
  c.model.vocab_size = 259;
  c.model.initializer_range = 0.006;
  resolve(c);
  for (const char* att : {"softmax", "softpick", "rectified", "softmax1", "sink"}) {
    c.model.attention = att;
    auto be = make_backend({"cpu"});
    Model model(c.model, *be);
    model.init_weights(79);
    // logits ~ N(0, 0.006^2 * 64): the mean over n random targets is ln V + O(0.05 / sqrt(n)), so 512
    // positions keep that noise near 0.002, well inside the bound
    Activations a = model.make_activations(8, 64);
    auto in = random_tokens(512, 259, 1), tgt = random_tokens(512, 259, 2);
    const double loss = mean_loss(model, a, in, tgt, 8, 64);
    INFO(att);
    CHECK(std::fabs(loss - std::log(259.0)) < 0.01);
    model.free_activations(a);
  }
}

TEST_CASE("a single batch is overfit to near-zero loss", "[model]") {
  for (const char* att : {"softmax", "softpick"}) {
    INFO(att);
    ModelConfig mc = tiny_model(att);
    mc.hidden_size = 32;
    mc.initializer_range = 0.02;
    auto be = make_backend({"cpu"});
    Model model(mc, *be);
    model.init_weights(3);
    OptimizerConfig oc;
    oc.weight_decay = 0;
    AdamW opt(oc, model);
    const int64_t B = 2, T = 16;
    Activations a = model.make_activations(B, T);
    auto in = random_tokens(size_t(B * T), 23, 21), tgt = random_tokens(size_t(B * T), 23, 22);
    double first = 0, last = 0;
    for (int step = 1; step <= 300; ++step) {
      model.zero_grads();
      model.forward(a, in, B, T);
      model.loss(a, tgt, true, 1.0 / double(B * T));
      model.backward(a);
      const LossSum l = model.take_loss(a);
      opt.reduce_gradients();
      opt.step(1e-2, step, clip_scale(opt.grad_norm(), 1.0));
      last = l.sum / double(l.count);
      if (step == 1) first = last;
    }
    CHECK(first > 2.5);
    CHECK(last < 0.05);
    model.free_activations(a);
  }
}

TEST_CASE("training is deterministic: same seed, bit-identical losses and weights", "[model]") {
  auto run = [](uint64_t seed) {
    auto be = make_backend({"cpu"});
    Model model(tiny_model("softpick", true), *be);
    model.init_weights(seed);
    AdamW opt(OptimizerConfig{}, model);
    Activations a = model.make_activations(2, 9);
    std::vector<double> losses;
    for (int step = 1; step <= 5; ++step) {
      auto in = random_tokens(18, 23, uint64_t(step)), tgt = random_tokens(18, 23, uint64_t(100 + step));
      model.zero_grads();
      model.forward(a, in, 2, 9);
      model.loss(a, tgt, true, 1.0 / 18);
      model.backward(a);
      losses.push_back(model.take_loss(a).sum);
      opt.reduce_gradients();
      opt.step(1e-3, step, clip_scale(opt.grad_norm(), 1.0));
    }
    std::vector<float> w(model.params().numel);
    be->download(std::span<float>(w), model.params());
    model.free_activations(a);
    return std::pair{losses, w};
  };
  auto [l1, w1] = run(79);
  auto [l2, w2] = run(79);
  auto [l3, w3] = run(80);
  CHECK(l1 == l2);
  CHECK(w1 == w2);
  CHECK(l1 != l3);
}

TEST_CASE("a shorter forward (sampling) matches the prefix of a full one", "[model]") {
  // causal attention: the hidden state at position t depends only on tokens 0..t
  auto be = make_backend({"cpu-f64"});
  Model model(tiny_model("softpick"), *be);
  model.init_weights(9);
  Activations a = model.make_activations(1, 12);
  auto in = random_tokens(12, 23, 4);
  std::vector<float> full(23), prefix(23);
  model.forward(a, std::span<const int32_t>(in.data(), 5), 1, 5);
  model.last_logits(a, prefix);
  model.forward(a, std::span<const int32_t>(in.data(), 12), 1, 12);
  model.forward(a, std::span<const int32_t>(in.data(), 5), 1, 5);  // after a longer pass, shorter again
  model.last_logits(a, full);
  CHECK(prefix == full);
  model.free_activations(a);
}

TEST_CASE("the loss accumulates on the device until take_loss reads and clears it", "[model]") {
  auto be = make_backend({"cpu"});
  Model model(tiny_model("softpick"), *be);
  model.init_weights(4);
  Activations a = model.make_activations(2, 9);
  auto in = random_tokens(18, 23, 1), tgt = random_tokens(18, 23, 2);
  tgt[3] = -1;  // an ignored row
  model.forward(a, in, 2, 9);
  model.loss(a, tgt, false, 0);
  const LossSum once = model.take_loss(a);
  CHECK(once.count == 17);
  model.loss(a, tgt, false, 0);
  model.loss(a, tgt, false, 0);
  const LossSum twice = model.take_loss(a);
  CHECK(twice.sum == 2 * once.sum);
  CHECK(twice.count == 2 * once.count);
  const LossSum cleared = model.take_loss(a);
  CHECK(cleared.sum == 0);
  CHECK(cleared.count == 0);
  model.free_activations(a);
}

TEST_CASE("the activation tables allocate and free every buffer of a pass at its size", "[model]") {
  for (bool ssmax : {false, true}) {
    INFO((ssmax ? "with" : "without") << " SSMax");
    const ModelConfig cfg = tiny_model("softpick", ssmax);
    auto be = make_backend({"cpu"});
    Model model(cfg, *be);
    const size_t before = be->memory_use().in_use;
    // every listed buffer is allocated at its spec's size and dtype, under a name of its own
    auto check_allocated = [&](const std::vector<ActivationSpec>& specs) {
      std::set<std::string> names;
      std::set<void*> pointers;
      size_t with_q_scaled = 0;
      for (const ActivationSpec& s : specs) {
        INFO(s.name);
        CHECK(names.insert(s.name).second);
        REQUIRE(s.slot);
        CHECK(s.slot->numel == s.numel());
        CHECK(s.slot->dtype == activation_dtype(s.kind, *be));
        CHECK(pointers.insert(s.slot->ptr).second);  // no two specs share a buffer
        with_q_scaled += s.name.ends_with("q_scaled");
      }
      CHECK((with_q_scaled > 0) == ssmax);
    };

    Activations a = model.make_activations(3, 7);
    const auto specs = activation_specs(cfg, 3, 7, Recompute::None, &a);
    CHECK(specs.size() == size_t(2 + 3 + 2 * (ssmax ? 14 : 13) + 2 + (ssmax ? 11 : 10) + 2));
    check_allocated(specs);
    CHECK(a.layers[1].lse.numel == size_t(3 * 7 * cfg.num_heads));
    CHECK(be->memory_use().in_use > before);
    model.free_activations(a);
    CHECK(be->memory_use().in_use == before);  // nothing leaks

    {
      Decoder dec(model, 9, 4);
      const auto dspecs = decoder_specs(cfg, 9, 4);
      size_t cache = 0;
      for (const ActivationSpec& s : dspecs)
        if (s.name.starts_with("cache.")) cache += s.numel();
      CHECK(cache == size_t(2 * 2 * 9 * *cfg.num_kv_heads * (cfg.hidden_size / cfg.num_heads)));
      CHECK(be->memory_use().in_use > before);
    }
    CHECK(be->memory_use().in_use == before);

    // recomputation: a recomputed field is one buffer that every layer views, a kept one is per layer
    size_t previous_bytes = 0;
    for (Recompute r : {Recompute::None, Recompute::Attention, Recompute::Full}) {
      INFO(recompute_name(r));
      Activations ra = model.make_activations(3, 7, r);
      const auto rspecs = activation_specs(cfg, 3, 7, r, &ra);
      check_allocated(rspecs);
      const size_t bytes = be->memory_use().in_use - before;
      if (r != Recompute::None) CHECK(bytes < previous_bytes);
      previous_bytes = bytes;
      CHECK((ra.layers[0].q.ptr == ra.layers[1].q.ptr) == (r != Recompute::None));
      CHECK((ra.layers[0].act.ptr == ra.layers[1].act.ptr) == (r == Recompute::Full));
      size_t shared = 0;
      for (const ActivationSpec& s : rspecs) shared += s.name.starts_with("recomputed.");
      CHECK(shared == (r == Recompute::None ? 0 : r == Recompute::Attention ? (ssmax ? 8 : 7) : (ssmax ? 14 : 13)));
      model.free_activations(ra);
      CHECK(be->memory_use().in_use == before);
    }
  }
}

TEST_CASE("recomputing activations in the backward pass gives the same gradients bit for bit", "[model]") {
  for (const char* attention : {"softmax", "softpick"})
    for (bool ssmax : {false, true}) {
      INFO(attention << (ssmax ? " + SSMax" : ""));
      const ModelConfig cfg = tiny_model(attention, ssmax);
      auto be = make_backend({"cpu", 2});
      Model model(cfg, *be);
      model.init_weights(6);
      const int64_t B = 2, T = 9;
      const auto in = random_tokens(size_t(B * T), cfg.vocab_size, 3), tgt = random_tokens(size_t(B * T), cfg.vocab_size, 4);
      std::vector<float> reference;
      for (Recompute r : {Recompute::None, Recompute::Attention, Recompute::Full}) {
        INFO(recompute_name(r));
        Activations a = model.make_activations(B, T, r);
        model.zero_grads();
        model.forward(a, in, B, T);
        model.loss(a, tgt, true, 1.0 / double(B * T));
        model.backward(a);
        std::vector<float> g(model.grads().numel);
        be->download(std::span<float>(g), model.grads());
        if (r == Recompute::None) reference = g;
        else CHECK(g == reference);
        model.free_activations(a);
      }
    }
}

TEST_CASE("gradient buckets tile the flat buffer, and backward announces each once its gradients are final",
          "[model]") {
  for (bool tied : {false, true})
    for (bool ssmax : {false, true}) {
      INFO((tied ? "tied" : "untied") << (ssmax ? " + SSMax" : ""));
      const ModelConfig cfg = tiny_model("softpick", ssmax, tied);
      auto be = make_backend({"cpu", 2});
      Model model(cfg, *be, /*pad_multiple=*/3 * kParamAlign);  // padding, as for 3 ZeRO ranks
      const std::vector<GradBucket>& buckets = model.grad_buckets();
      // the head, the blocks from the last, the embedding; contiguous from the end of the buffer down to 0
      REQUIRE(buckets.size() == size_t(cfg.num_hidden_layers) + 2);
      CHECK(buckets.front().name == "head");
      CHECK(buckets[1].name == "model.layers." + std::to_string(cfg.num_hidden_layers - 1));
      CHECK(buckets.back().name == "embedding");
      size_t end = model.num_params();
      for (const GradBucket& b : buckets) {
        CHECK(b.offset + b.numel == end);
        end = b.offset;
      }
      CHECK(end == 0);
      for (const ParamSpec& s : model.specs()) {  // each tensor in the bucket its name says
        const auto in = std::find_if(buckets.begin(), buckets.end(), [&](const GradBucket& b) {
          return s.offset >= b.offset && s.offset + s.numel <= b.offset + b.numel;
        });
        REQUIRE(in != buckets.end());
        if (s.name.rfind("model.layers.", 0) == 0) CHECK(s.name.rfind(in->name + ".", 0) == 0);
      }

      // each bucket's gradients, copied when backward announces it, are its final gradients
      model.init_weights(8);
      const int64_t B = 2, T = 7;
      Activations a = model.make_activations(B, T);
      const auto tokens = random_tokens(size_t(B * T), cfg.vocab_size, 5);
      const auto targets = random_tokens(size_t(B * T), cfg.vocab_size, 6);
      std::vector<std::vector<float>> announced;
      model.zero_grads();
      model.forward(a, tokens, B, T);
      model.loss(a, targets, true, 1.0 / double(B * T));
      model.backward(a, [&](size_t i) {
        REQUIRE(i == announced.size());
        std::vector<float> g(buckets[i].numel);
        be->download(std::span<float>(g), model.grads().slice(buckets[i].offset, buckets[i].numel));
        announced.push_back(std::move(g));
      });
      REQUIRE(announced.size() == buckets.size());
      for (size_t i = 0; i < buckets.size(); ++i) {
        INFO(buckets[i].name);
        std::vector<float> g(buckets[i].numel);
        be->download(std::span<float>(g), model.grads().slice(buckets[i].offset, buckets[i].numel));
        CHECK(g == announced[i]);
        CHECK(std::any_of(g.begin(), g.end(), [](float x) { return x != 0; }));
      }
      model.free_activations(a);
    }
}
