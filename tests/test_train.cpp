// The training loop end to end on a tiny config and a small synthetic English-like corpus: metrics are
// written, the validation loss falls, every attention variant trains, and a golden loss curve guards
// against unintended numerical changes; and the progress line's remaining-time estimate.
//
// The golden curve (tests/golden/tiny_softpick.json) is regenerated deliberately, after a change that is
// meant to alter the numbers, with:  SOFTPICK_UPDATE_GOLDEN=1 build/tests/softpick_tests "[train]"
#include "config/config.h"
#include "core/check.h"
#include "core/rng.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "test_util.h"
#include "train/perf.h"
#include "train/trainer.h"

#include <catch2/catch.hpp>

#include <fstream>

using namespace sp;
using sp::test::TempDir;

namespace {

// The golden losses hold to this relative tolerance: far above run-to-run noise (zero: runs are
// deterministic) and BLAS differences between CPUs (~1e-6), far below any real change of the math.
constexpr double kGoldenRelTol = 1e-4;

const std::string kTiny = std::string(SOFTPICK_TESTS_DIR) + "/configs/tiny.json";
const std::string kGolden = std::string(SOFTPICK_TESTS_DIR) + "/golden/tiny_softpick.json";

// Sentences drawn from a small grammar, byte-tokenized: learnable structure in a few hundred steps.
void write_corpus(const std::string& dir) {
  const char* subjects[] = {"The cat", "A dog", "My friend", "The old man", "Every child", "The bird"};
  const char* verbs[] = {"sees", "likes", "finds", "eats", "wants", "follows"};
  const char* objects[] = {"the ball.", "a red apple.", "the long road.", "some bread.", "the quiet river."};
  Tokenizer tok = Tokenizer::load("byte");
  for (auto [name, docs, seed] : {std::tuple{"train", 400, 1}, std::tuple{"val", 40, 2}}) {
    Rng rng{uint64_t(seed)};
    std::vector<int32_t> tokens;
    for (int d = 0; d < docs; ++d) {
      std::string text;
      for (int s = 0; s < 4; ++s)
        text += std::string(subjects[rng.below(6)]) + " " + verbs[rng.below(6)] + " " + objects[rng.below(5)] + " ";
      auto ids = tok.encode_bytes(text);
      tokens.insert(tokens.end(), ids.begin(), ids.end());
    }
    write_shard(dir + "/tiny_" + name + "_000000.bin", tokens);
  }
}

Config tiny_config(const TempDir& d, std::vector<std::string> overrides = {}) {
  overrides.push_back("data.train_files=" + (d / "tiny_train_*.bin"));
  overrides.push_back("data.val_files=" + (d / "tiny_val_*.bin"));
  overrides.push_back("training.run_dir=" + (d / "run"));
  return load_config(kTiny, overrides);
}

struct Metrics {
  std::vector<double> train_loss, val_loss;
  std::vector<nlohmann::json> analysis;
  int samples = 0;
};

Metrics read_metrics(const std::string& path) {
  Metrics m;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == "train") m.train_loss.push_back(j["loss"].get<double>());
    if (j["type"] == "eval") m.val_loss.push_back(j["val_loss"].get<double>());
    if (j["type"] == "sample") m.samples++;
    if (j["type"] == "analysis") m.analysis.push_back(j);
  }
  return m;
}

}  // namespace

TEST_CASE("training writes metrics and the validation loss falls", "[train]") {
  TempDir d;
  write_corpus(d.path.string());
  TrainSummary s = train(tiny_config(d, {"logging.analysis_interval=20"}));
  CHECK(s.steps_done == 40);
  CHECK(s.skipped_steps == 0);
  Metrics m = read_metrics(d / "run/metrics.jsonl");
  REQUIRE(m.train_loss.size() == 40);
  REQUIRE(m.val_loss.size() == 3);  // steps 0 and 20, and the final one
  CHECK(m.val_loss.front() > 5.0);  // about ln(259) = 5.56 at init
  CHECK(m.val_loss.back() < m.val_loss.front() - 2.0);
  CHECK(m.samples == 1);
  REQUIRE(m.analysis.size() == 2);  // the periodic analysis at steps 0 and 20
  for (const auto& a : m.analysis) {
    CHECK(a["sink_rate"].get<double>() >= 0);
    CHECK(a["kurtosis"].get<double>() > 0);
    CHECK(a["max_abs_activation"].get<double>() > 0);
    CHECK(a["sparsity_zero"].get<double>() > 0);  // softpick: exact zeros in the maps
  }
  // the run directory holds the resolved config, which loads back to the same config
  Config back = load_config(d / "run/config.json");
  CHECK(to_json(back) == to_json(tiny_config(d, {"logging.analysis_interval=20"})));
}

TEST_CASE("every attention variant trains", "[train]") {
  TempDir d;
  write_corpus(d.path.string());
  for (auto overrides : std::vector<std::vector<std::string>>{{"model.attention=softmax"},
                                                              {"model.attention=rectified"},
                                                              {"model.attention=softmax1"},
                                                              {"model.attention=sink"},
                                                              {"model.attention_gate=true"},
                                                              {"model.attention=softmax", "model.attention_gate=true"},
                                                              {"model.ssmax=true"},
                                                              {"model.attention=softmax", "model.ssmax=true"}}) {
    INFO(overrides[0] << (overrides.size() > 1 ? " " + overrides[1] : ""));
    std::filesystem::remove_all(d / "run");
    overrides.push_back("training.steps=25");
    TrainSummary s = train(tiny_config(d, overrides));
    CHECK(s.skipped_steps == 0);
    CHECK(s.last_val_loss < s.first_val_loss - 1.5);
  }
}

TEST_CASE("golden loss curve of the tiny softpick config", "[train]") {
  TempDir d;
  write_corpus(d.path.string());
  train(tiny_config(d, {"training.steps=12", "lr_scheduler.warmup_steps=3"}));
  std::vector<double> losses = read_metrics(d / "run/metrics.jsonl").train_loss;
  REQUIRE(losses.size() == 12);
  if (std::getenv("SOFTPICK_UPDATE_GOLDEN")) {
    std::ofstream(kGolden) << nlohmann::json{{"config", "tests/configs/tiny.json, training.steps=12, "
                                                        "lr_scheduler.warmup_steps=3"},
                                             {"losses", losses}}
                                  .dump(2)
                           << "\n";
    WARN("golden curve rewritten: " << kGolden);
  }
  auto golden = nlohmann::json::parse(sp::test::read_text(kGolden))["losses"].get<std::vector<double>>();
  REQUIRE(golden.size() == losses.size());
  for (size_t i = 0; i < losses.size(); ++i) {
    INFO("step " << i << ": loss " << losses[i] << ", golden " << golden[i]);
    CHECK(std::fabs(losses[i] - golden[i]) <= kGoldenRelTol * std::fabs(golden[i]));
  }
}

TEST_CASE("training refuses missing data with the key named", "[train]") {
  TempDir d;
  Config c = tiny_config(d);
  try {
    train(c);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("data.train_files"));
  }
}

TEST_CASE("Ctrl-C stops training cleanly after the current step", "[train]") {
  TempDir d;
  write_corpus(d.path.string());
  // many steps, so the run is still going when the signal arrives
  const std::string cmd = "train " + kTiny + " --training.steps=100000 --logging.log_interval=1 --logging.level=info" +
                          " --data.train_files=" + (d / "tiny_train_*.bin") + " --data.val_files=" +
                          (d / "tiny_val_*.bin") + " --training.run_dir=" + (d / "run");
  const std::string script = "(" + std::string(SOFTPICK_BINARY) + " " + cmd + " >" + (d / "out") + " 2>&1 & pid=$!; " +
                             "for i in $(seq 100); do grep -q 'step      5' " + (d / "out") +
                             " 2>/dev/null && break; sleep 0.1; done; kill -INT $pid; wait $pid; echo $? >" +
                             (d / "rc") + ")";
  REQUIRE(std::system(script.c_str()) == 0);
  CHECK(std::stoi(sp::test::read_text(d / "rc")) == 130);
  const std::string out = sp::test::read_text(d / "out");
  CHECK_THAT(out, Catch::Contains("stop requested") && Catch::Contains("done:"));
  Metrics m = read_metrics(d / "run/metrics.jsonl");
  CHECK(m.train_loss.size() >= 5);
  CHECK(m.train_loss.size() < 100000);
}

TEST_CASE("ETA: no estimate from the warm-up step alone, then steps and periodic work at their mean times",
          "[unit]") {
  RunEta eta;
  RunEta::Counts left{};
  left[RunEta::kStep] = 100;
  left[RunEta::kEval] = 3;
  eta.add(RunEta::kEval, 9.0);  // the evaluation before step 0
  eta.add(RunEta::kStep, 50.0);  // warm-up: not counted
  CHECK(!eta.seconds_left(left));
  eta.add(RunEta::kStep, 1.0);
  CHECK(!eta.seconds_left(left));
  eta.add(RunEta::kStep, 3.0);
  REQUIRE(eta.seconds_left(left));
  CHECK(*eta.seconds_left(left) == Approx(100 * 2.0 + 3 * 9.0));
  left[RunEta::kSample] = 4;  // never timed: counts as free
  CHECK(*eta.seconds_left(left) == Approx(227.0));

  CHECK(multiples_in(0, 10, 5) == 2);  // 0, 5
  CHECK(multiples_in(1, 10, 5) == 1);
  CHECK(multiples_in(5, 6, 5) == 1);
  CHECK(multiples_in(6, 10, 5) == 0);
  CHECK(multiples_in(7, 7, 3) == 0);
  CHECK(multiples_in(3, 1500, 250) == 5);  // 250 .. 1250
}
