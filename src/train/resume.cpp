#include "train/resume.h"

#include "checkpoint/checkpoint.h"
#include "core/check.h"
#include "core/log.h"

#include <filesystem>
#include <cstring>
#include <fstream>

namespace fs = std::filesystem;

namespace sp {

std::optional<std::string> choose_resume_checkpoint(const Config& cfg, bool overwrite) {
  const std::string& run_dir = cfg.training.run_dir;
  const std::string& mode = cfg.checkpoint.resume;
  auto existing = list_checkpoints(run_dir);
  if (mode == "never") {
    if (!existing.empty() && !overwrite)
      usage_fail("{}: has {} checkpoint(s) (newest {}); checkpoint.resume = \"never\" will not overwrite them. "
                 "Resume with --checkpoint.resume=auto, pick another training.run_dir, or pass --overwrite to "
                 "delete them", run_dir, existing.size(), existing.back().dir);
    if (!existing.empty()) {
      spdlog::warn("--overwrite: deleting the checkpoints of {}", run_dir);
      fs::remove_all(fs::path(run_dir) / "checkpoints");
    }
    return std::nullopt;
  }
  if (mode != "auto") {  // an explicit checkpoint directory: it must be valid
    verify_checkpoint(mode);
    return mode;
  }
  return newest_valid_checkpoint(run_dir);
}

void check_resume_config(const Config& cfg, const std::string& dir, bool weights_only) {
  const Config saved = checkpoint_config(verify_checkpoint(dir), dir);
  bool unsafe = false;
  std::vector<std::string> diffs = config_differences(saved, cfg, unsafe);
  if (weights_only) {  // --init-from: only the model has to match
    std::erase_if(diffs, [](const std::string& d) { return d.rfind("model.", 0) != 0; });
    unsafe = !diffs.empty();
  }
  std::string list;
  for (const auto& d : diffs) list += "\n  " + d;
  if (unsafe)
    usage_fail("{}: the checkpoint's config differs from this run's in keys that must not change:{}\nUse the "
               "checkpoint's settings, or start a new run (another training.run_dir; --init-from to reuse the "
               "weights)", dir, list);
  if (!diffs.empty()) spdlog::info("config changes since {} (allowed):{}", dir, list);
}

void truncate_metrics(const std::string& path, int64_t step) {
  if (!fs::exists(path)) return;
  const std::string tmp = path + ".tmp";
  {
    std::ifstream in(path);
    std::ofstream out(tmp);
    for (std::string line; std::getline(in, line);) {
      try {
        if (nlohmann::json::parse(line).at("step").get<int64_t>() < step) out << line << "\n";
      } catch (const nlohmann::json::exception&) {
        // a line cut short by a crash: drop it
      }
    }
    if (!out) fail("{}: cannot rewrite the metrics ({})", tmp, std::strerror(errno));
  }
  fs::rename(tmp, path);
}

}  // namespace sp
