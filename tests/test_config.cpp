// Config loading, overrides, validation and the derived values of the paper's presets.
#include "config/config.h"
#include "core/check.h"
#include "test_util.h"

#include <catch2/catch.hpp>

using namespace sp;
using sp::test::TempDir;
using sp::test::write_text;

namespace {

const std::string kConfigs = std::string(SOFTPICK_SOURCE_DIR) + "/configs/";

// The message of the usage Error that `f` throws; fails the test if it throws nothing.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::Usage);
    return e.what();
  }
  FAIL("expected an error");
  return {};
}

std::string config_error(const std::string& json, std::vector<std::string> overrides = {}) {
  TempDir d;
  write_text(d / "c.json", json);
  std::string msg = error_of([&] { load_config(d / "c.json", overrides); });
  CHECK(msg.find(d / "c.json") != std::string::npos);  // every message names the file
  return msg;
}

}  // namespace

TEST_CASE("340M preset resolves to the paper's shape and counts", "[unit]") {
  Config c = load_config(kConfigs + "softpick_340m.json");
  Derived d = derive(c);
  CHECK(c.model.attention == "softpick");
  CHECK(c.model.hidden_size == 1024);
  CHECK(c.model.num_hidden_layers == 24);
  CHECK(c.model.num_heads == 16);
  CHECK(*c.model.num_kv_heads == 16);
  CHECK(*c.model.intermediate_size == 2816);
  CHECK(d.head_dim == 64);
  CHECK(std::llround(d.params_total / 1e5) == 3739);           // 373.9M
  CHECK(std::llround(d.params_non_embedding / 1e5) == 3083);   // 308.3M
  CHECK(std::llround(d.flops_per_token / 1e7) == 325);         // 3.25 GFLOP per token at T = 4096
  CHECK(d.tokens_per_step_per_rank == 16 * 4096);
  CHECK(c.optimizer.lr == 3e-4);
  CHECK(c.optimizer.eps == 1e-15);
  CHECK(c.training.seed == 79);
}

TEST_CASE("every preset loads and matches the paper's table", "[unit]") {
  for (auto name : {"softmax_340m", "rectified_340m", "scaled_softpick_340m", "softmax_120m", "softpick_120m",
                    "softmax_1.8b", "softpick_1.8b", "softmax_7b", "softpick_7b", "demo_softmax",
                    "demo_softpick", "softmax1_340m", "sink_340m", "gated_softmax_340m"}) {
    INFO(name);
    Config c = load_config(kConfigs + name + ".json");
    CHECK(derive(c).params_total > 0);
  }
  CHECK(std::llround(derive(load_config(kConfigs + "softpick_1.8b.json")).params_total / 1e6) == 1775);
  Config s = load_config(kConfigs + "scaled_softpick_340m.json");
  CHECK(s.model.ssmax);
  // the sink-study presets: the softmax 340M run with one remedy each
  const int64_t base = derive(load_config(kConfigs + "softmax_340m.json")).params_total;
  CHECK(derive(load_config(kConfigs + "softmax1_340m.json")).params_total == base);
  CHECK(derive(load_config(kConfigs + "sink_340m.json")).params_total == base + 24 * 16);  // (H) per block
  Config gated = load_config(kConfigs + "gated_softmax_340m.json");
  CHECK(gated.model.attention_gate);
  CHECK(derive(gated).params_total == base + 24 * 1024 * 1024);
  Config g = load_config(kConfigs + "softpick_7b.json");
  CHECK(*g.model.num_kv_heads == 8);
  CHECK(*g.model.intermediate_size == 14336);
  Config t = load_config(kConfigs + "softpick_120m.json");
  CHECK(t.model.tie_word_embeddings);
  CHECK(t.model.initializer_range == 0.02);
}

TEST_CASE("SwiGLU width rule", "[unit]") {
  CHECK(swiglu_width(1024) == 2816);
  CHECK(swiglu_width(2048) == 5632);
  CHECK(swiglu_width(768) == 2048);
  Config c;
  c.model.hidden_size = 512;
  c.model.num_heads = 8;
  resolve(c);
  CHECK(*c.model.intermediate_size == 1536);  // int(512 * 8/3) = 1365 -> 1536
}

TEST_CASE("overrides are parsed and type-checked", "[unit]") {
  Config c;
  apply_override(c, "--optimizer.lr=1e-3");
  apply_override(c, "training.steps=200");
  apply_override(c, "--training.batch_size=1e2");
  apply_override(c, "--model.tie_word_embeddings=true");
  apply_override(c, "--model.attention=softmax");
  apply_override(c, "--model.num_kv_heads=4");
  apply_override(c, "--training.run_dir=runs/x=y");  // only the first '=' splits
  CHECK(c.optimizer.lr == 1e-3);
  CHECK(c.training.steps == 200);
  CHECK(c.training.batch_size == 100);
  CHECK(c.model.tie_word_embeddings);
  CHECK(c.model.attention == "softmax");
  CHECK(*c.model.num_kv_heads == 4);
  CHECK(c.training.run_dir == "runs/x=y");
  apply_override(c, "--model.num_kv_heads=null");
  CHECK(!c.model.num_kv_heads);

  CHECK_THAT(error_of([&] { apply_override(c, "--optimizer.lr=abc"); }), Catch::Contains("optimizer.lr"));
  CHECK_THAT(error_of([&] { apply_override(c, "--training.steps=2.5"); }), Catch::Contains("training.steps"));
  CHECK_THAT(error_of([&] { apply_override(c, "--model.ssmax=yes"); }), Catch::Contains("model.ssmax"));
  CHECK_THAT(error_of([&] { apply_override(c, "--model.attention=sparsemax"); }),
             Catch::Contains("softpick"));
  CHECK_THAT(error_of([&] { apply_override(c, "--optimizer.lr=-1"); }), Catch::Contains("out of range"));
  CHECK_THAT(error_of([&] { apply_override(c, "--optimizer.lrr=1"); }),
             Catch::Contains("did you mean optimizer.lr"));
  CHECK_THAT(error_of([&] { apply_override(c, "--optimizer.lr"); }), Catch::Contains("needs a value"));
}

TEST_CASE("training.device is cpu unless set to cuda", "[unit]") {
  Config c;
  CHECK(c.training.device == "cpu");
  CHECK(to_json(c)["training"]["device"] == "cpu");
  apply_override(c, "--training.device=cuda");  // a build without the CUDA backend refuses it at make_backend
  CHECK(c.training.device == "cuda");
  CHECK_THAT(error_of([&] { apply_override(c, "--training.device=gpu"); }),
             Catch::Contains("training.device = \"gpu\" is not one of: cpu, cuda"));
  CHECK_THAT(config_error(R"({"training": {"device": "tpu"}})"),
             Catch::Contains("training.device = \"tpu\" is not one of: cpu, cuda"));
}

TEST_CASE("config file errors name the file and the key", "[unit]") {
  CHECK_THAT(config_error(R"({"model": {"hiden_size": 512}})"),
             Catch::Contains("model.hiden_size") && Catch::Contains("did you mean model.hidden_size"));
  CHECK_THAT(config_error(R"({"modle": {}})"), Catch::Contains("did you mean model"));
  CHECK_THAT(config_error(R"({"optimizer": {"lr": "fast"}})"), Catch::Contains("optimizer.lr must be a number"));
  CHECK_THAT(config_error(R"({"training": {"steps": -5}})"), Catch::Contains("training.steps"));
  CHECK_THAT(config_error(R"({"model": {"hidden_size": 1000, "num_heads": 16}})"),
             Catch::Contains("divisible by model.num_heads"));
  CHECK_THAT(config_error(R"({"model": {"hidden_size": 96, "num_heads": 32}})"), Catch::Contains("even"));
  CHECK_THAT(config_error(R"({"model": {"num_heads": 16, "num_kv_heads": 3}})"),
             Catch::Contains("model.num_kv_heads"));
  CHECK_THAT(config_error(R"({"model": {"attention": "sparsemax"}})"), Catch::Contains("model.attention"));
  CHECK_THAT(config_error(R"({"model": {"vocab_size": 2, "bos_token_id": 1, "eos_token_id": 2}})"),
             Catch::Contains("eos_token_id"));
  CHECK_THAT(config_error(R"({"model": )"), Catch::Contains("not valid JSON"));
  CHECK_THAT(config_error(R"([1, 2])"), Catch::Contains("JSON object"));
  CHECK_THAT(config_error(R"({"model": 3})"), Catch::Contains("section \"model\""));
  // an override that breaks consistency is reported as well
  CHECK_THAT(config_error("{}", {"model.num_heads=7"}), Catch::Contains("num_heads"));
  CHECK_THAT(error_of([] { load_config("/nonexistent/x.json"); }), Catch::Contains("/nonexistent/x.json"));
}

TEST_CASE("missing data files and tokenizer are reported with the key", "[unit]") {
  TempDir d;
  write_text(d / "c.json", R"({"data": {"train_files": ")" + (d / "none_*.bin") + R"("}})");
  Config c = load_config(d / "c.json");
  CHECK_THAT(error_of([&] { validate_data_files(c); }),
             Catch::Contains("data.train_files") && Catch::Contains("matches no file"));
  write_text(d / "a.bin", "");
  c.data.train_files = d / "*.bin";
  c.data.val_files = d / "*.bin";
  c.data.tokenizer = d / "missing_tokenizer.json";
  CHECK_THAT(error_of([&] { validate_data_files(c); }), Catch::Contains("data.tokenizer"));
  c.data.tokenizer = "byte";
  CHECK_NOTHROW(validate_data_files(c));
}

TEST_CASE("resolved config round-trips through JSON", "[unit]") {
  Config c = load_config(kConfigs + "scaled_softpick_340m.json", {"training.steps=1234"});
  TempDir d;
  write_text(d / "resolved.json", to_json(c).dump(2));
  Config back = load_config(d / "resolved.json");
  CHECK(to_json(back) == to_json(c));
  CHECK(back.training.steps == 1234);
}

TEST_CASE("docs/configs.md lists every key as the binary does", "[unit]") {
  // Regenerate the table with: scripts/update_config_docs.sh
  std::string doc = sp::test::read_text(std::string(SOFTPICK_SOURCE_DIR) + "/docs/configs.md");
  INFO("docs/configs.md is out of date: run scripts/update_config_docs.sh");
  CHECK(doc.find(config_reference_markdown()) != std::string::npos);
}

TEST_CASE("the CLI reports config errors and exits 2", "[unit]") {
  auto r = sp::test::run_softpick("config " + kConfigs + "softpick_340m.json --optimizer.lr=abc");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("optimizer.lr"));
  r = sp::test::run_softpick("config " + kConfigs + "softpick_340m.json --training.stepz=3");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("did you mean training.steps"));
  r = sp::test::run_softpick("config " + kConfigs + "softpick_340m.json");
  CHECK(r.code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["model"]["hidden_size"] == 1024);
  CHECK(j["derived"]["params_total"] == 373867520);
  r = sp::test::run_softpick("frobnicate");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("usage"));
  r = sp::test::run_softpick("config --no-such-flag");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("usage"));
  for (auto cmd : {"--help", "config --help", "data --help", "data inspect --help"}) {
    INFO(cmd);
    CHECK(sp::test::run_softpick(cmd).code == 0);
  }
}
