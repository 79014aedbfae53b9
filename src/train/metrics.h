// Run outputs: metrics as one JSON object per line (metrics.jsonl in the run directory) and the terminal
// progress line.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>

namespace sp {

class MetricsLog {
public:
  explicit MetricsLog(const std::string& path);  // appends; an Error names the path if it cannot be opened
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void write(const nlohmann::ordered_json& record);  // one line, flushed
  const std::string& path() const { return path_; }

private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// "1h02m", "3m05s", "12s"
std::string format_duration(double seconds);

}  // namespace sp
