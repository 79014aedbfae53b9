// Analysis (docs/analysis.md): each metric on hand-built attention maps and hidden states with known
// answers, the maps the analysis materialises against the model's flash attention, the .npy writer, and
// `softpick analyze` end to end on tiny softmax and softpick runs.
#include "analysis/analyze.h"
#include "analysis/metrics.h"
#include "analysis/npy.h"
#include "backend/backend.h"
#include "config/config.h"
#include "core/check.h"
#include "core/rng.h"
#include "data/shard.h"
#include "model/model.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

using namespace sp;
using sp::test::TempDir;
namespace fs = std::filesystem;

namespace {

// (T, T) map with row t given by f(t, j) for j <= t and zeros above the diagonal.
template <class F>
std::vector<float> causal_map(int64_t T, F f) {
  std::vector<float> m(size_t(T * T), 0.0f);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j <= t; ++j) m[size_t(t * T + j)] = float(f(t, j));
  return m;
}

double harmonic(int64_t n) {
  double h = 0;
  for (int64_t i = 1; i <= n; ++i) h += 1.0 / double(i);
  return h;
}

using test::random_tokens;

ModelConfig tiny_model(const std::string& attention, bool ssmax = false, bool gate = false) {
  return test::tiny_model_config(
      {.attention = attention, .ssmax = ssmax, .gate = gate, .hidden = 32, .ffn = 48, .vocab = 41});
}

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("sink score: all weight on key 0, uniform causal rows, the diagonal", "[model][analysis]") {
  const int64_t T = 8;
  CHECK(sink_score(causal_map(T, [](auto, auto j) { return j == 0 ? 1.0 : 0.0; }), T) == 1.0);
  // uniform over the visible keys: a[t, 0] = 1 / (t + 1), so the mean over t is H_T / T
  for (int64_t n : {1, 4, 8, 16}) {
    const auto uniform = causal_map(n, [](auto t, auto) { return 1.0 / double(t + 1); });
    CHECK(sink_score(uniform, n) == Approx(harmonic(n) / double(n)).epsilon(1e-6));
  }
  // H_8 / 8 = 0.340 is a sink at the paper's 0.3, H_16 / 16 = 0.211 is not
  CHECK(harmonic(8) / 8 > 0.3);
  CHECK(harmonic(16) / 16 < 0.3);
  // every query on itself: only row 0 puts weight on key 0
  CHECK(sink_score(causal_map(T, [](auto t, auto j) { return t == j ? 1.0 : 0.0; }), T) == Approx(1.0 / T));
}

TEST_CASE("sink score leaves padding out and takes the first real key as key 0", "[model][analysis]") {
  const int64_t T = 6;
  // positions 0 and 1 are left padding: their rows and columns hold garbage, and each real row is uniform
  // over the real keys 2..t, so the weight on key 2 is 1 / (t - 1) and the mean over t = 2..5 is H_4 / 4
  const auto map = causal_map(T, [](auto t, auto j) { return t < 2 || j < 2 ? 1e6 : 1.0 / double(t - 1); });
  const std::vector<uint8_t> valid = {0, 0, 1, 1, 1, 1};
  CHECK(sink_score(map, T, valid) == Approx(harmonic(4) / 4));
  const std::vector<uint8_t> none(size_t(T), 0);
  CHECK(std::isnan(sink_score(map, T, none)));
}

TEST_CASE("sink rates aggregate over (sequence, layer, head) cells", "[model][analysis]") {
  AnalysisReport r;
  r.layers = 2;
  r.heads = 2;
  r.sink_cells = {4, 4, 4, 4};
  r.sink_count = {4, 0, 2, 0};  // (L, H)
  r.sink_score_sum = {3.2, 0.4, 1.6, 0.0};
  CHECK(r.sink_rate() == Approx(6.0 / 16));
  CHECK(r.sink_rate_layer(0) == Approx(0.5));
  CHECK(r.sink_rate_layer(1) == Approx(0.25));
  CHECK(r.sink_rate_head(1, 0) == Approx(0.5));
  CHECK(r.sink_score_head(0, 0) == Approx(0.8));
  CHECK(r.sink_score_layer(1) == Approx(0.2));
  CHECK(r.sink_score() == Approx(5.2 / 16));
}

TEST_CASE("sparsity counts the causal triangle, diagonal included", "[model][analysis]") {
  const int64_t T = 4;
  // lower triangle row by row (10 entries): (0,0) = 0, (1,1) = -0, (2,0) = 1e-6, (2,1) = 2e-5, the rest
  // 0.1; the 7s above the diagonal must not count
  std::vector<float> map(size_t(T * T), 7.0f);
  const float lower[10] = {0.0f, 0.1f, -0.0f, 1e-6f, 2e-5f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f};
  int i = 0;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j <= t; ++j) map[size_t(t * T + j)] = lower[i++];
  SparsityCounts c = sparsity_counts(map, T, 1e-5);
  CHECK(c.total == 10);
  CHECK(c.zeros == 2);
  CHECK(c.near_zeros == 3);
  CHECK(c.zero_fraction() == Approx(0.2));
  CHECK(c.near_zero_fraction() == Approx(0.3));
  // masking position 0 removes row 0 and column 0: entries (1,1), (2,1), (2,2), (3,1), (3,2), (3,3)
  const std::vector<uint8_t> valid = {0, 1, 1, 1};
  SparsityCounts m = sparsity_counts(map, T, 1e-5, valid);
  CHECK(m.total == 6);
  CHECK(m.zeros == 1);       // -0 at (1,1)
  CHECK(m.near_zeros == 1);  // 1e-6 at (2,0) is masked out, 2e-5 at (2,1) is above the threshold
  c.merge(m);
  CHECK(c.total == 16);
}

TEST_CASE("Pearson kurtosis of known distributions", "[model][analysis]") {
  const std::vector<float> two = {-1, 1};
  CHECK(moments_of(two).kurtosis() == Approx(1.0));
  const std::vector<float> three = {-1, 0, 1};  // mu2 = mu4 = 2/3
  CHECK(moments_of(three).kurtosis() == Approx(1.5));
  // one spike among n - 1 zeros: central moments give (n^2 - 3n + 3) / (n - 1), about n
  for (int n : {2, 10, 1000}) {
    std::vector<float> spike(size_t(n), 0.0f);
    spike[size_t(n / 2)] = 5.0f;
    const double expect = (double(n) * n - 3.0 * n + 3.0) / (n - 1.0);
    CHECK(moments_of(spike).kurtosis() == Approx(expect).epsilon(1e-9));
  }
  Rng rng(11);
  std::vector<float> gauss(200000), laplace(200000);
  for (auto& x : gauss) x = float(rng.normal());
  for (auto& x : laplace) x = float((rng.uniform() < 0.5 ? -1 : 1) * -std::log(1.0 - rng.uniform()));
  CHECK(moments_of(gauss).kurtosis() == Approx(3.0).margin(0.05));
  CHECK(moments_of(laplace).kurtosis() == Approx(6.0).margin(0.3));
  // a constant has no spread: kurtosis undefined
  CHECK(std::isnan(moments_of(std::vector<float>(5, 2.0f)).kurtosis()));
}

TEST_CASE("moments merge exactly, ignore the mean, track extremes and masks", "[model][analysis]") {
  Rng rng(3);
  std::vector<float> x(10007);
  for (auto& v : x) v = float(1000.0 + rng.normal() * (rng.below(50) == 0 ? 20.0 : 1.0));  // big mean, heavy tail
  const Moments whole = moments_of(x);
  Moments parts;
  for (auto [a, b] : {std::pair{0, 1}, std::pair{1, 4000}, std::pair{4000, 4001}, std::pair{4001, 10007}})
    parts.merge(moments_of(std::span<const float>(x.data() + a, size_t(b - a))));
  CHECK(parts.n == whole.n);
  CHECK(parts.mean == Approx(whole.mean).epsilon(1e-12));
  CHECK(parts.kurtosis() == Approx(whole.kurtosis()).epsilon(1e-9));
  CHECK(parts.min == whole.min);
  CHECK(parts.max == whole.max);
  std::vector<float> shifted(x);  // kurtosis is about the mean: unchanged by a shift
  for (auto& v : shifted) v -= 1000.0f;
  CHECK(moments_of(shifted).kurtosis() == Approx(whole.kurtosis()).epsilon(1e-3));
  CHECK(whole.kurtosis() > 10);
  // rows masked out take no part: (3, 2) with the middle row padding
  const std::vector<float> rows = {-1, 1, 100, -200, 1, -1};
  const std::vector<uint8_t> valid = {1, 0, 1};
  const Moments m = moments_of_rows(rows, 3, 2, valid);
  CHECK(m.n == 4);
  CHECK(m.kurtosis() == Approx(1.0));
  CHECK(m.min == -1);
  CHECK(m.max_abs() == 1);
}

TEST_CASE("the maps the analysis builds, times V, are the model's flash attention output", "[model][analysis]") {
  auto be = make_backend({"cpu"});
  const int64_t B = 2, T = 70;  // two sequences; T crosses the 64-key tile of the flash kernel
  for (auto [attention, ssmax] : {std::pair{"softmax", false}, std::pair{"softpick", false},
                                  std::pair{"rectified", false}, std::pair{"softpick", true},
                                  std::pair{"softmax1", false}, std::pair{"sink", true}}) {
    INFO(attention << (ssmax ? " + SSMax" : ""));
    const ModelConfig cfg = tiny_model(attention, ssmax);
    Model model(cfg, *be);
    model.init_weights(5);
    Activations acts = model.make_activations(B, T);
    model.forward(acts, random_tokens(size_t(B * T), cfg.vocab_size, 8), B, T);
    const int64_t H = cfg.num_heads, D = cfg.hidden_size / H;
    std::vector<float> probs, out, flash(size_t(B * T * H * D));
    for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
      attention_maps(model, acts, l, probs, out);
      REQUIRE(probs.size() == size_t(B * H * T * T));
      be->download(flash, acts.layers[size_t(l)].att.slice(0, flash.size()));
      double err = 0, scale = 0;
      for (size_t i = 0; i < flash.size(); ++i) {
        err = std::max(err, double(std::abs(out[i] - flash[i])));
        scale = std::max(scale, double(std::abs(flash[i])));
      }
      CHECK(err <= 1e-5 * std::max(scale, 1.0));
      // rows are causal and weigh at most 1 in all (exactly 1 for softmax)
      bool upper_zero = true;
      double worst_row = 0;
      for (int64_t bh = 0; bh < B * H; ++bh)
        for (int64_t t = 0; t < T; ++t) {
          const float* row = probs.data() + size_t((bh * T + t) * T);
          double sum = 0;
          for (int64_t j = 0; j < T; ++j) {
            if (j > t) upper_zero = upper_zero && row[j] == 0.0f;
            sum += row[j];
          }
          worst_row = std::max(worst_row, std::string(attention) == "softmax" ? std::abs(sum - 1) : sum - 1);
        }
      CHECK(upper_zero);
      CHECK(worst_row <= 1e-5);
    }
    model.free_activations(acts);
  }
}

TEST_CASE("analyze_sequences counts every cell, masks padding and dumps the first sequence", "[model][analysis]") {
  auto be = make_backend({"cpu"});
  const ModelConfig cfg = tiny_model("softpick");
  Model model(cfg, *be);
  model.init_weights(2);
  const int64_t S = 3, T = 12, L = cfg.num_hidden_layers, H = cfg.num_heads, C = cfg.hidden_size;
  const auto tokens = random_tokens(size_t(S * T), cfg.vocab_size, 4);
  TempDir d;
  AnalysisOptions opt;
  opt.dump = {{1, 3}, {0, 0}};
  opt.dump_dir = d.path.string();
  const AnalysisReport r = analyze_sequences(model, tokens, S, T, opt);
  CHECK(r.sink_cells == std::vector<int64_t>(size_t(L * H), S));
  REQUIRE(r.hidden.size() == size_t(L + 1));
  for (const auto& m : r.hidden) CHECK(m.n == double(S * T * C));
  for (const auto& c : r.sparsity) CHECK(c.total == uint64_t(S * H * T * (T + 1) / 2));
  CHECK(r.sparsity_all().zeros > 0);  // random softpick: many scores <= 0
  CHECK(r.hidden_all().max_abs() >= r.hidden[0].max_abs());

  // the dump of (1, 3) is head 3 of block 1 of sequence 0, as attention_maps gives it
  REQUIRE(r.dumped.size() == 2);
  Activations acts = model.make_activations(1, T);
  model.forward(acts, std::span<const int32_t>(tokens.data(), size_t(T)), 1, T);
  std::vector<float> probs, out;
  attention_maps(model, acts, 1, probs, out);
  model.free_activations(acts);
  const auto bytes = read_bytes(d / "attention_L1_H3.npy");
  REQUIRE(bytes.size() == 128 + size_t(T * T) * 4);
  CHECK(std::memcmp(bytes.data() + 128, probs.data() + size_t(3 * T * T), size_t(T * T) * 4) == 0);
  CHECK(fs::exists(d / "attention_L0_H0.npy"));

  // left padding of 4 positions in sequence 1: fewer hidden rows and map entries, same cells
  std::vector<uint8_t> valid(size_t(S * T), 1);
  for (int64_t t = 0; t < 4; ++t) valid[size_t(T + t)] = 0;
  const AnalysisReport p = analyze_sequences(model, tokens, S, T, AnalysisOptions{}, valid);
  CHECK(p.hidden[0].n == double((S * T - 4) * C));
  CHECK(p.sparsity[0].total == uint64_t(H * (2 * T * (T + 1) / 2 + (T - 4) * (T - 3) / 2)));
  CHECK(p.sink_cells == r.sink_cells);
}

TEST_CASE("analyze_sequences measures the output gate's scores of a gated model", "[model][analysis]") {
  auto be = make_backend({"cpu"});
  const int64_t S = 2, T = 10;
  Model plain(tiny_model("softmax"), *be);
  plain.init_weights(2);
  CHECK(analyze_sequences(plain, random_tokens(size_t(S * T), 41, 3), S, T, AnalysisOptions{}).gate.empty());
  const ModelConfig cfg = tiny_model("softmax", false, true);
  Model model(cfg, *be);
  model.init_weights(2);
  const auto tokens = random_tokens(size_t(S * T), cfg.vocab_size, 3);
  const AnalysisReport r = analyze_sequences(model, tokens, S, T, AnalysisOptions{});
  REQUIRE(r.gate.size() == size_t(cfg.num_hidden_layers));
  for (const auto& m : r.gate) {
    CHECK(m.n == double(S * T * cfg.hidden_size));
    CHECK(m.min > 0);
    CHECK(m.max < 1);
    CHECK(m.min < m.max);  // random gate weights: scores spread around 1/2
  }
  // block 0's scores by hand: sigmoid of the gate logits the forward pass keeps
  Activations acts = model.make_activations(1, T);
  Moments want;
  for (int64_t s = 0; s < S; ++s) {
    model.forward(acts, std::span<const int32_t>(tokens).subspan(size_t(s * T), size_t(T)), 1, T);
    std::vector<float> g(size_t(T * cfg.hidden_size));
    be->download(g, acts.layers[0].att_gate.slice(0, g.size()));
    for (float& x : g) x = 1.0f / (1.0f + std::exp(-x));
    want.merge(moments_of(g));
  }
  model.free_activations(acts);
  CHECK(r.gate[0].mean == Approx(want.mean).epsilon(1e-12));
  CHECK(r.gate[0].max == want.max);
  CHECK(to_json(r).contains("gate_mean_per_layer"));
  CHECK(format_report(r).find("output gate") != std::string::npos);

  // a zero gate projection opens every gate halfway
  std::vector<float> w(model.params().numel);
  be->download(w, model.params());
  for (const ParamSpec& p : model.specs())
    if (p.name.find("self_attn.gate_proj") != std::string::npos)
      std::fill_n(w.begin() + std::ptrdiff_t(p.offset), p.numel, 0.0f);
  be->upload(model.params(), std::span<const float>(w));
  for (const auto& m : analyze_sequences(model, tokens, S, T, AnalysisOptions{}).gate) {
    CHECK(m.min == 0.5);
    CHECK(m.max == 0.5);
  }
}

TEST_CASE("npy files: v1.0 header padded to 64 bytes, C-order float32", "[model][analysis]") {
  TempDir d;
  const std::vector<float> x = {1, 2, 3, 4, 5, 6};
  write_npy(d / "a.npy", x, {2, 3});
  const auto b = read_bytes(d / "a.npy");
  REQUIRE(b.size() == 128 + 24);  // 10 + 70-odd header bytes round up to 128
  CHECK(std::string(b.data(), 6) == "\x93NUMPY");
  CHECK((b[6] == 1 && b[7] == 0));
  const size_t hlen = size_t(uint8_t(b[8])) | size_t(uint8_t(b[9])) << 8;
  CHECK(10 + hlen == 128);
  const std::string header(b.data() + 10, hlen);
  CHECK(header.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 0) == 0);
  CHECK(header.back() == '\n');
  CHECK(std::memcmp(b.data() + 128, x.data(), 24) == 0);
  write_npy(d / "b.npy", x, {6});
  const auto c = read_bytes(d / "b.npy");
  CHECK(std::string(c.data() + 10, c.size() - 10 - 24).find("'shape': (6,)") != std::string::npos);
  CHECK_THROWS_WITH(write_npy(d / "no/such/dir/c.npy", x, {6}), Catch::Contains("no/such/dir/c.npy.tmp"));
}

TEST_CASE("head lists for --dump-attention are parsed, or refused with the flag named", "[model][analysis]") {
  CHECK(parse_head_list("0:3", "dump-attention") == std::vector<std::pair<int64_t, int64_t>>{{0, 3}});
  CHECK(parse_head_list("1:0,12:15", "dump-attention") ==
        std::vector<std::pair<int64_t, int64_t>>{{1, 0}, {12, 15}});
  for (const char* bad : {"", "0", "0-1", "a:b", "1:", ":2", "0:1,", "0:1;2:3", "0:1:2"})
    CHECK_THROWS_WITH(parse_head_list(bad, "dump-attention"), Catch::Contains("--dump-attention"));
}

namespace {

const std::string kTiny = std::string(SOFTPICK_TESTS_DIR) + "/configs/tiny.json";

// Shards of random tokens (documents of random length, each starting with BOS) and a tiny run trained on
// them for a few steps, with its checkpoint.
struct TinyRuns {
  TempDir dir;
  TinyRuns() {
    Rng rng(5);
    for (auto [name, n] : {std::pair{"train", 60000}, std::pair{"val", 4000}}) {
      std::vector<int32_t> t(static_cast<size_t>(n));
      for (auto& x : t) x = rng.below(40) == 0 ? 1 : int32_t(3 + rng.below(60));
      t[0] = 1;
      write_shard(dir / (std::string("d_") + name + ".bin"), t);
    }
  }
  std::string val() const { return dir / "d_val.bin"; }
  // trains run `name` with attention `attention`; returns its run directory
  std::string train(const std::string& name, const std::string& attention) const {
    const auto r = sp::test::run_softpick(
        "train " + kTiny + " --model.attention=" + attention + " --data.train_files=" + (dir / "d_train.bin") +
        " --data.val_files=" + val() + " --training.run_dir=" + (dir / name) +
        " --training.steps=30 --training.batch_size=8 --training.threads=2 --logging.eval_interval=1000");
    REQUIRE(r.code == 0);
    return dir / name;
  }
};

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

}  // namespace

TEST_CASE("softpick analyze on tiny softmax and softpick runs", "[train][analysis]") {
  TinyRuns runs;
  const int64_t T = 32, L = 2, H = 4;  // tests/configs/tiny.json
  std::map<std::string, nlohmann::json> result;
  for (const std::string attention : {"softmax", "softpick"}) {
    INFO(attention);
    const std::string run = runs.train(attention, attention);
    // the run directory resolves to its newest checkpoint; the JSON goes to RUN/analysis/step_N.json
    const auto r = sp::test::run_softpick("analyze " + run + " --data " + runs.val() +
                                          " --samples 4 --threads 2 --dump-attention 0:0,1:3 --dump-dir " +
                                          (runs.dir / (attention + "_maps")));
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    CHECK_THAT(r.out, Catch::Contains("sink rate") && Catch::Contains("kurtosis") && Catch::Contains("block 1"));
    const nlohmann::json j = read_json(run + "/analysis/step_00000030.json");
    for (const char* key : {"type", "checkpoint", "step", "attention", "data", "sequences", "seq_len", "sink_eps",
                            "sink_rate", "sink_rate_per_layer", "sink_rate_per_head", "sink_score_per_head",
                            "kurtosis", "kurtosis_per_layer", "min_activation", "max_activation",
                            "max_abs_activation", "max_abs_activation_per_layer", "sparsity_zero",
                            "sparsity_near_zero", "sparsity_zero_per_layer", "attention_dumps"})
      CHECK(j.contains(key));
    CHECK(j["step"] == 30);
    CHECK(j["sequences"] == 4);
    CHECK(j["seq_len"] == T);  // the checkpoint's training.seq_len
    CHECK(j["sink_eps"] == 0.3);
    CHECK(j["sink_rate_per_layer"].size() == size_t(L));
    CHECK(j["sink_rate_per_head"].size() == size_t(L));
    CHECK(j["sink_rate_per_head"][0].size() == size_t(H));
    CHECK(j["kurtosis_per_layer"].size() == size_t(L + 1));  // the embedding output and each block's
    CHECK(j["max_abs_activation_per_layer"].size() == size_t(L + 1));
    CHECK(j["attention_entries"] == uint64_t(4 * L * H * T * (T + 1) / 2));
    const double rate = j["sink_rate"], kurt = j["kurtosis"];
    const double zeros = j["sparsity_zero"], near = j["sparsity_near_zero"];
    CHECK((rate >= 0 && rate <= 1));
    CHECK(kurt >= 1);  // Pearson kurtosis is never below 1
    CHECK(near >= zeros);
    CHECK(j["max_abs_activation"].get<double>() >= std::abs(j["min_activation"].get<double>()));
    REQUIRE(j["attention_dumps"].size() == 2);
    for (const auto& f : j["attention_dumps"]) {
      const auto bytes = read_bytes(f.get<std::string>());
      CHECK(bytes.size() == 128 + size_t(T * T) * 4);
      CHECK(std::string(bytes.data(), 6) == "\x93NUMPY");
    }
    result[attention] = j;
  }
  // softpick gives exact zeros wherever a score is <= 0; softmax weights are exp(s - m) / l > 0, and the
  // scores of a tiny model are far from the ~100 spread at which an fp32 exp underflows to 0
  CHECK(result["softpick"]["sparsity_zero"].get<double>() > 0.01);  // about 6% on these random tokens
  CHECK(result["softmax"]["sparsity_zero"].get<double>() == 0.0);
  CHECK(result["softmax"]["sparsity_near_zero"].get<double>() == 0.0);

  // --json, --seq-len, --samples beyond the data (lowered, with a warning), a checkpoint directory given directly
  const std::string ck = runs.dir / "softpick/checkpoints/step_00000030";
  auto r = sp::test::run_softpick("analyze " + ck + " --data " + runs.val() + " --seq-len 16 --samples 1000 --json " +
                                  (runs.dir / "out/a.json"));
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  const nlohmann::json j = read_json(runs.dir / "out/a.json");
  CHECK(j["seq_len"] == 16);
  CHECK(j["sequences"] == (4000 - 1) / 16);
  CHECK_THAT(r.err, Catch::Contains("analysing 249 sequences instead of 1000"));
}

TEST_CASE("softpick analyze refuses bad input with one clear message", "[train][analysis]") {
  TinyRuns runs;
  const std::string run = runs.train("run", "softpick");
  const std::string base = "analyze " + run + " --data " + runs.val() + " --samples 2 ";
  struct Case {
    std::string args;
    int code;
    std::string message;
  };
  const std::string maps = " --dump-dir " + (runs.dir / "m");
  const Case cases[] = {
      {base + "--dump-attention 2:0" + maps, 2, "--dump-attention 2:0: the model has layers 0..1"},
      {base + "--dump-attention 0:4" + maps, 2, "heads 0..3"},
      {base + "--dump-attention 0-1" + maps, 2, "--dump-attention 0-1: '0-1' is not LAYER:HEAD"},
      {base + "--dump-attention 0:1", 2, "--dump-attention needs --dump-dir"},
      {base + "--seq-len 5000", 1, "too few for one window of --seq-len + 1 = 5001 tokens"},
      {base + "--layout sideways", 2, "--layout=sideways: expected stream, document or bos"},
      {base + "--seq-len 0", 2, "--seq-len=0: must be at least 1"},
      {base + "--samples 0", 2, "--samples=0: must be at least 1"},
      {base + "--sink-eps abc", 2, "--sink-eps=abc: expected a number"},
      {base + "--device gpu", 2, "training.device = \"gpu\" is not one of: cpu, cuda"},
#ifndef SOFTPICK_HAVE_CUDA_BACKEND
      {base + "--device cuda", 2, "built without the CUDA backend"},
#endif
      {"analyze " + run + " --data " + (runs.dir / "missing_*.bin"), 2, "missing_*.bin: no file matches"},
      {"analyze " + (runs.dir / "nowhere"), 1, "nowhere: no such checkpoint or run directory"},
      {"analyze " + runs.dir.path.string() + " --data " + runs.val(), 1, "neither a checkpoint"},
      {"analyze " + run + " --data " + (runs.dir / "d_train.bin") + " --threads 2 --seq-len 4 --device cpu", 0, ""},
  };
  for (const auto& c : cases) {
    INFO(c.args);
    const auto r = sp::test::run_softpick(c.args);
    INFO(r.out << r.err);
    CHECK(r.code == c.code);
    CHECK_THAT(r.err, Catch::Contains(c.message));
  }
  // a damaged checkpoint is named with its file; the run directory then has no valid checkpoint
  const std::string model = run + "/checkpoints/step_00000030/model.safetensors";
  std::fstream f(model, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(200);
  f.put('\x7f');
  f.close();
  auto r = sp::test::run_softpick("analyze " + run + "/checkpoints/step_00000030 --data " + runs.val());
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("model.safetensors: SHA-256 does not match"));
  r = sp::test::run_softpick("analyze " + run + " --data " + runs.val());
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("none of its 1 checkpoints is valid"));
}
