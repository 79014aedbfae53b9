// Helpers shared by the tests: temporary directories, running the softpick binary, small files.
#pragma once

#include "config/config.h"
#include "core/rng.h"
#include "dist/comm.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace sp::test {

// A fresh directory under the system temp dir, removed when the object dies.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "softpick_test_XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct RunResult {
  int code;
  std::string out, err;
};

// Runs `softpick ARGS` through the shell, capturing stdout and stderr.
inline RunResult run_softpick(const std::string& args) {
  TempDir d;
  std::string cmd = std::string(SOFTPICK_BINARY) + " " + args + " >" + (d / "out") + " 2>" + (d / "err");
  int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text(d / "out"), read_text(d / "err")};
}

// A small model for tests: 2 blocks of 4 query heads, sizes and variant as given.
struct TinyModel {
  std::string attention = "softpick";
  bool ssmax = false, gate = false;  // gate: model.attention_gate
  int64_t hidden = 16, kv_heads = 2, ffn = 24, vocab = 23;
  double init = 0.3;  // large enough that attention scores take both signs (softpick rows can abstain)
  bool tied = false;
  double softpick_eps = 1e-6;
};

inline ModelConfig tiny_model_config(const TinyModel& t) {
  Config c;
  auto& m = c.model;
  m.attention = t.attention;
  m.ssmax = t.ssmax;
  m.attention_gate = t.gate;
  m.hidden_size = t.hidden;
  m.num_hidden_layers = 2;
  m.num_heads = 4;
  m.num_kv_heads = t.kv_heads;
  m.intermediate_size = t.ffn;
  m.vocab_size = t.vocab;
  m.initializer_range = t.init;
  m.tie_word_embeddings = t.tied;
  m.softpick_eps = t.softpick_eps;
  resolve(c);
  return c.model;
}

// n token ids drawn uniformly from [lowest, vocab).
inline std::vector<int32_t> random_tokens(size_t n, int64_t vocab, uint64_t seed, int32_t lowest = 0) {
  Rng rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = int32_t(lowest + int64_t(rng.below(uint64_t(vocab - lowest))));
  return t;
}

// The job's communicator for the [mpi] tests, made once per process: MPI is initialised and finalised once.
inline Communicator& job_communicator() {
  static const std::unique_ptr<Communicator> comm = make_communicator();
  return *comm;
}

}  // namespace sp::test
