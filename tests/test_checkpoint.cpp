// Checkpoints: the formats, exact resume after SIGKILL (also inside a checkpoint write), rotation,
// integrity checks, config-change rules, and failing disks.
#include "checkpoint/checkpoint.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/sha256.h"
#include "core/bf16.h"
#include "core/check.h"
#include "core/rng.h"
#include "data/shard.h"
#include "model/params.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

using namespace sp;
using sp::test::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kTiny = std::string(SOFTPICK_TESTS_DIR) + "/configs/tiny.json";

// A run directory plus data: the tiny config with 8 x 32-token batches (a few ms per step).
struct Run {
  TempDir dir;
  Run() {
    Rng rng(5);
    for (auto [name, n] : {std::pair{"train", 200000}, std::pair{"val", 20000}}) {
      std::vector<int32_t> t(static_cast<size_t>(n));
      for (auto& x : t) x = rng.below(40) == 0 ? 1 : int32_t(3 + rng.below(60));
      write_shard(dir / (std::string("d_") + name + ".bin"), t);
    }
  }
  std::string run_dir(const std::string& name) const { return dir / name; }
  // the softpick command line for run `name`
  std::string args(const std::string& name, const std::string& extra = "") const {
    return "train " + kTiny + " --data.train_files=" + (dir / "d_train.bin") + " --data.val_files=" +
           (dir / "d_val.bin") + " --training.run_dir=" + run_dir(name) +
           " --training.batch_size=8 --training.threads=2 --logging.level=info --logging.eval_interval=20" +
           " --logging.sample_interval=25 " + extra;
  }
};

std::vector<std::string> train_losses(const std::string& metrics) {
  std::vector<std::string> out;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == "train") {
      REQUIRE(j["step"] == int64_t(out.size()));  // every step exactly once, in order
      out.push_back(j["loss"].dump());            // the exact decimal form of the double
    }
  }
  return out;
}

std::string sh(const std::string& script) {
  TempDir d;
  std::string cmd = "(" + script + ") >" + (d / "out") + " 2>&1; echo $? >>" + (d / "out");
  std::system(cmd.c_str());
  return sp::test::read_text(d / "out");
}

void flip_byte(const std::string& path, size_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(std::streamoff(offset));
  char c;
  f.get(c);
  f.seekp(std::streamoff(offset));
  f.put(char(c ^ 0x5A));
}

}  // namespace

TEST_CASE("SHA-256 matches the standard's test vectors", "[checkpoint]") {
  Sha256 a;
  CHECK(a.hex_digest() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 b;
  b.update("abc", 3);
  CHECK(b.hex_digest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 c;  // two blocks, fed in uneven pieces
  const std::string s = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  c.update(s.data(), 5);
  c.update(s.data() + 5, s.size() - 5);
  CHECK(c.hex_digest() == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("safetensors round trip and damage detection", "[checkpoint]") {
  TempDir d;
  std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {7.5f};
  write_safetensors(d / "t.safetensors", {{"x.weight", {2, 3}, a.data()}, {"y", {1}, b.data()}}, {{"k", "v"}});
  SafetensorsReader r(d / "t.safetensors");
  REQUIRE(r.tensors().size() == 2);
  CHECK(r.tensors().at("x.weight").shape == std::vector<int64_t>{2, 3});
  CHECK(r.metadata().at("k") == "v");
  std::vector<float> back(6);
  r.read("x.weight", back);
  CHECK(back == a);
  fs::resize_file(d / "t.safetensors", fs::file_size(d / "t.safetensors") - 2);
  CHECK_THROWS_WITH(SafetensorsReader(d / "t.safetensors"), Catch::Contains("truncated"));
}

TEST_CASE("bf16 and fp16 conversions are exact where they must be and round to nearest even", "[checkpoint]") {
  CHECK(float_to_bf16(1.0f) == 0x3F80);
  CHECK(float_to_bf16(-0.0f) == 0x8000);
  CHECK(float_to_bf16(1.00390625f) == 0x3F80);  // 1 + 2^-8: a tie, to the even 1.0
  CHECK(float_to_bf16(1.01171875f) == 0x3F82);  // 1 + 3 * 2^-8: a tie, to the even 1 + 2^-6
  CHECK(float_to_bf16(1.0040000f) == 0x3F81);   // above the tie: up
  CHECK(float_to_bf16(std::numeric_limits<float>::max()) == 0x7F80);  // rounds to +inf
  CHECK(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  for (float x : {0.0f, 1.5f, -3.25f, 0.0078125f}) CHECK(bf16_to_float(float_to_bf16(x)) == x);  // representable: exact
  CHECK(fp16_to_float(0x3C00) == 1.0f);
  CHECK(fp16_to_float(0xC000) == -2.0f);
  CHECK(fp16_to_float(0x7BFF) == 65504.0f);
  CHECK(fp16_to_float(0x0001) == std::ldexp(1.0f, -24));   // the smallest subnormal
  CHECK(fp16_to_float(0x03FF) == std::ldexp(1023.0f, -24));
  CHECK(fp16_to_float(0x7C00) == std::numeric_limits<float>::infinity());
  CHECK(fp16_to_float(0xFC00) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(fp16_to_float(0x7E00)));
  CHECK(std::signbit(fp16_to_float(0x8000)));
}

TEST_CASE("safetensors: BF16 files are written, BF16 and F16 read, other dtypes refused", "[checkpoint]") {
  TempDir d;
  std::vector<float> a = {1.0f, 1.01171875f, -3.3f, 1e-3f};
  write_safetensors(d / "b.safetensors", {{"w", {2, 2}, a.data()}}, {}, TensorDtype::BF16);
  SafetensorsReader rb(d / "b.safetensors");
  CHECK(rb.tensors().at("w").dtype == TensorDtype::BF16);
  CHECK(fs::file_size(d / "b.safetensors") % 8 == 0);  // 8-byte aligned header, 2 bytes an element
  std::vector<float> back(4);
  rb.read("w", back);
  for (size_t i = 0; i < a.size(); ++i) CHECK(back[i] == bf16_to_float(float_to_bf16(a[i])));

  // F16, and an unsupported dtype, written by hand
  auto write_raw = [&](const std::string& name, const std::string& header, const std::vector<uint16_t>& data) {
    std::ofstream out(d / name, std::ios::binary);
    const uint64_t n = header.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header;
    out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size() * 2));
  };
  write_raw("h.safetensors", R"({"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]}})", {0x3C00, 0xC000, 0x7BFF});
  std::vector<float> h(3);
  SafetensorsReader(d / "h.safetensors").read("h", h);
  CHECK(h == std::vector<float>{1.0f, -2.0f, 65504.0f});
  write_raw("i.safetensors", R"({"q":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}})", {0});
  CHECK_THROWS_WITH(SafetensorsReader(d / "i.safetensors"), Catch::Contains("tensor q has dtype I8"));
  write_raw("s.safetensors", R"({"q":{"dtype":"F16","shape":[4],"data_offsets":[0,6]}})", {0, 0, 0});
  CHECK_THROWS_WITH(SafetensorsReader(d / "s.safetensors"), Catch::Contains("do not match its shape"));
}

TEST_CASE("a weights-only checkpoint verifies and loads with zero moments", "[checkpoint]") {
  TempDir d;
  Config c = load_config(kTiny);
  const auto specs = param_specs(c.model);
  CheckpointTensors t;
  t.params.assign(flat_size(specs), 0.25f);
  const std::string dir = save_checkpoint(d / "run", specs, t, TrainState{}, c);
  CHECK_FALSE(fs::exists(fs::path(dir) / "optimizer.safetensors"));
  verify_checkpoint(dir);
  CheckpointTensors back;
  load_checkpoint(dir, specs, flat_size(specs), back, /*with_optimizer=*/true);
  CHECK(back.params == t.params);
  CHECK(back.exp_avg == std::vector<float>(flat_size(specs), 0.0f));
  CHECK(back.exp_avg_sq == std::vector<float>(flat_size(specs), 0.0f));

  // a checkpoint of a training run that lost its optimizer record is incomplete, not weights-only
  t.exp_avg.assign(flat_size(specs), 0.5f);
  t.exp_avg_sq.assign(flat_size(specs), 0.5f);
  TrainState s;
  s.step = s.updates = 7;
  const std::string full = save_checkpoint(d / "run2", specs, t, s, c);
  const std::string state_path = (fs::path(full) / "state.json").string();
  nlohmann::json st = nlohmann::json::parse(std::ifstream(state_path));
  st["files"].erase("optimizer.safetensors");
  std::ofstream(state_path) << st.dump();
  CHECK_THROWS_WITH(verify_checkpoint(full), Catch::Contains("no record of optimizer.safetensors"));
}

TEST_CASE("a run killed at any moment and resumed equals an uninterrupted run", "[checkpoint]") {
  Run r;
  const std::string bin = SOFTPICK_BINARY;
  const std::string steps = "--training.steps=150 --checkpoint.interval=20";
  // the reference, straight through
  REQUIRE_THAT(sh(bin + " " + r.args("straight", steps)), Catch::EndsWith("0\n"));
  // the same, killed with SIGKILL three times and resumed with the same command each time:
  // (1) at an arbitrary moment mid-run, (2) inside the checkpoint write of step 80, (3) right after the
  // checkpoint of step 100 was renamed into place
  const std::string cmd = bin + " " + r.args("killed", steps);
  const std::string metrics = r.run_dir("killed") + "/metrics.jsonl";
  const std::string mid_run = sh(cmd + " & pid=$!; for i in $(seq 400); do [ $(cat " + metrics +
                                " 2>/dev/null | grep -c '\"train\"') -ge 37 ] && break; sleep 0.01; done; " +
                                "kill -9 $pid; wait $pid");
  CHECK_THAT(mid_run, Catch::EndsWith("137\n"));  // it was killed, not finished
  const std::string in_write = sh("SOFTPICK_FAULT=kill-in-checkpoint:80 " + cmd);
  CHECK_THAT(in_write, Catch::EndsWith("137\n"));  // 128 + SIGKILL
  CHECK(fs::exists(r.run_dir("killed") + "/checkpoints/.tmp-step_00000080"));  // the half-written one
  const std::string after_save = sh(cmd + " & pid=$!; for i in $(seq 1000); do [ -d " + r.run_dir("killed") +
                                   "/checkpoints/step_00000100 ] && break; sleep 0.005; done; kill -9 $pid; wait $pid");
  CHECK_THAT(after_save, Catch::EndsWith("137\n"));
  const std::string last = sh(cmd);
  CHECK_THAT(last, Catch::Contains("resuming from") && Catch::EndsWith("0\n"));

  CHECK(train_losses(r.run_dir("killed") + "/metrics.jsonl") == train_losses(r.run_dir("straight") + "/metrics.jsonl"));
  const std::string a = r.run_dir("straight") + "/checkpoints/step_00000150/", b = r.run_dir("killed") + "/checkpoints/step_00000150/";
  CHECK(sha256_file(a + "model.safetensors") == sha256_file(b + "model.safetensors"));
  CHECK(sha256_file(a + "optimizer.safetensors") == sha256_file(b + "optimizer.safetensors"));
  CHECK(!fs::exists(r.run_dir("killed") + "/checkpoints/.tmp-step_00000080"));  // cleaned up by the next save
}

TEST_CASE("rotation keeps the newest k and every keep_every-th", "[checkpoint]") {
  Run r;
  auto out = sh(std::string(SOFTPICK_BINARY) + " " +
                r.args("rot", "--training.steps=35 --checkpoint.interval=5 --checkpoint.keep_latest_k=2 "
                              "--checkpoint.keep_every=10"));
  REQUIRE_THAT(out, Catch::EndsWith("0\n"));
  std::vector<int64_t> steps;
  for (auto& e : list_checkpoints(r.run_dir("rot"))) steps.push_back(e.step);
  CHECK(steps == std::vector<int64_t>{10, 20, 30, 35});
}

TEST_CASE("damaged checkpoints are refused, and auto falls back to the previous one", "[checkpoint]") {
  Run r;
  const std::string bin = SOFTPICK_BINARY;
  REQUIRE_THAT(sh(bin + " " + r.args("dmg", "--training.steps=30 --checkpoint.interval=10")), Catch::EndsWith("0\n"));
  const std::string ck = r.run_dir("dmg") + "/checkpoints/";

  // one flipped byte in the newest weights: auto resumes from step 20, naming the damaged file
  flip_byte(ck + "step_00000030/model.safetensors", 5000);
  CHECK_THROWS_WITH(verify_checkpoint(ck + "step_00000030"),
                    Catch::Contains("model.safetensors") && Catch::Contains("SHA-256"));
  auto out = sh(bin + " " + r.args("dmg", "--training.steps=30 --checkpoint.interval=10"));
  CHECK_THAT(out, Catch::Contains("skipping damaged checkpoint") && Catch::Contains("step_00000030/model.safetensors") &&
                      Catch::Contains("resuming from " + ck + "step_00000020") && Catch::EndsWith("0\n"));

  // truncated, missing and unreadable files
  fs::resize_file(ck + "step_00000020/optimizer.safetensors", 100);
  CHECK_THROWS_WITH(verify_checkpoint(ck + "step_00000020"),
                    Catch::Contains("optimizer.safetensors") && Catch::Contains("truncated"));
  fs::remove(ck + "step_00000030/model.safetensors");
  CHECK_THROWS_WITH(verify_checkpoint(ck + "step_00000030"), Catch::Contains("model.safetensors: missing"));
  sp::test::write_text(ck + "step_00000030/state.json", "{\"format_version\": 1,");
  CHECK_THROWS_WITH(verify_checkpoint(ck + "step_00000030"), Catch::Contains("state.json: not valid JSON"));

  // an explicit path to a damaged checkpoint is refused with the file named, exit non-zero
  out = sh(bin + " " + r.args("dmg2", "--training.steps=30 --checkpoint.resume=" + ck + "step_00000020"));
  CHECK_THAT(out, Catch::Contains("optimizer.safetensors") && !Catch::EndsWith("\n0\n"));
  // nothing valid left under auto: refuse rather than silently start over
  out = sh(bin + " " + r.args("dmg", "--training.steps=40"));
  CHECK_THAT(out, Catch::Contains("none of its") && !Catch::EndsWith("\n0\n"));
}

TEST_CASE("tensors that do not match the config are refused", "[checkpoint]") {
  Run r;
  REQUIRE_THAT(sh(std::string(SOFTPICK_BINARY) + " " + r.args("shape", "--training.steps=10 --checkpoint.interval=10")),
               Catch::EndsWith("0\n"));
  auto be = make_backend({"cpu"});
  Config c = load_config(kTiny, {"model.intermediate_size=80"});
  Model m(c.model, *be);
  CHECK_THROWS_WITH(load_weights(r.run_dir("shape") + "/checkpoints/step_00000010", m),
                    Catch::Contains("mlp.gate_proj.weight") && Catch::Contains("shape"));
}

TEST_CASE("config changes on resume: safe ones are logged, unsafe ones refused", "[checkpoint]") {
  Run r;
  const std::string bin = SOFTPICK_BINARY;
  REQUIRE_THAT(sh(bin + " " + r.args("cfg", "--training.steps=10 --checkpoint.interval=10")), Catch::EndsWith("0\n"));
  auto out = sh(bin + " " + r.args("cfg", "--training.steps=20 --checkpoint.interval=10 --model.attention=softmax"));
  CHECK_THAT(out, Catch::Contains("model.attention: \"softpick\" -> \"softmax\"  (not allowed)") &&
                      Catch::EndsWith("2\n"));
  out = sh(bin + " " + r.args("cfg", "--training.steps=20 --checkpoint.interval=10 --training.seq_len=16"));
  CHECK_THAT(out, Catch::Contains("training.seq_len") && Catch::EndsWith("2\n"));
  out = sh(bin + " " + r.args("cfg", "--training.steps=20 --checkpoint.interval=10 --data.layout=document"));
  CHECK_THAT(out, Catch::Contains("data.layout: \"stream\" -> \"document\"  (not allowed)") &&
                      Catch::EndsWith("2\n"));
  out = sh(bin + " " + r.args("cfg", "--training.steps=20 --checkpoint.interval=5 --logging.log_interval=3"));
  CHECK_THAT(out, Catch::Contains("(allowed)") && Catch::Contains("training.steps: 10 -> 20") &&
                      Catch::Contains("resuming from") && Catch::EndsWith("0\n"));
}

TEST_CASE("resume=never refuses a run directory with checkpoints unless --overwrite", "[checkpoint]") {
  Run r;
  const std::string bin = SOFTPICK_BINARY;
  REQUIRE_THAT(sh(bin + " " + r.args("nev", "--training.steps=10 --checkpoint.interval=10")), Catch::EndsWith("0\n"));
  auto out = sh(bin + " " + r.args("nev", "--training.steps=10 --checkpoint.resume=never"));
  CHECK_THAT(out, Catch::Contains("will not overwrite") && Catch::EndsWith("2\n"));
  out = sh(bin + " " + r.args("nev", "--training.steps=10 --checkpoint.resume=never --overwrite"));
  CHECK_THAT(out, !Catch::Contains("resuming from") && Catch::EndsWith("0\n"));
  // --init-from: a new run from the weights, at step 0
  out = sh(bin + " " + r.args("init", "--training.steps=10 --init-from=" + r.run_dir("nev") +
                                          "/checkpoints/step_00000010"));
  CHECK_THAT(out, Catch::Contains("new run from the weights") && Catch::EndsWith("0\n"));
  CHECK(train_losses(r.run_dir("init") + "/metrics.jsonl").size() == 10);
}

TEST_CASE("a failing disk ends training with a clear error and the previous checkpoint intact", "[checkpoint]") {
  Run r;
  const std::string bin = SOFTPICK_BINARY;
  REQUIRE_THAT(sh(bin + " " + r.args("disk", "--training.steps=10 --checkpoint.interval=10")), Catch::EndsWith("0\n"));
  const std::string prev = r.run_dir("disk") + "/checkpoints/step_00000010";
  const std::string before = sha256_file(prev + "/model.safetensors");
  // a 64 KiB file-size limit: the metrics still fit, the next checkpoint's weights do not (EFBIG, like ENOSPC)
  auto out = sh("ulimit -f 64; " + bin + " " + r.args("disk", "--training.steps=20 --checkpoint.interval=10"));
  CHECK_THAT(out, Catch::Contains("step_00000020/model.safetensors: write failed") && Catch::EndsWith("1\n"));
  CHECK_NOTHROW(verify_checkpoint(prev));
  CHECK(sha256_file(prev + "/model.safetensors") == before);
  CHECK(list_checkpoints(r.run_dir("disk")).size() == 1);
  CHECK(!fs::exists(r.run_dir("disk") + "/checkpoints/.tmp-step_00000020"));
}
