// Helpers shared by the tests: temporary directories, running the softpick binary, small files.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

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

}  // namespace sp::test
