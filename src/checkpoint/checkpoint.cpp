#include "checkpoint/checkpoint.h"

#include "checkpoint/safetensors.h"
#include "checkpoint/sha256.h"
#include "core/check.h"
#include "core/fault.h"
#include "core/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <map>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

namespace fs = std::filesystem;

namespace sp {

namespace {

const char* kModelFile = "model.safetensors";
const char* kOptimizerFile = "optimizer.safetensors";
const char* kStateFile = "state.json";
const char* kTmpPrefix = ".tmp-";

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("{}: cannot open to flush ({})", path, std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) fail("{}: fsync failed ({})", path, std::strerror(errno));
}

// Test hook (core/fault.h): dies in the middle of writing the checkpoint, after the weights.
void maybe_inject_fault(int64_t step) {
  if (fault_requested("kill-in-checkpoint", step)) std::raise(SIGKILL);
}

std::vector<TensorRef> tensor_refs(const std::vector<ParamSpec>& specs, const std::vector<float>& flat,
                                   const std::string& suffix) {
  std::vector<TensorRef> refs;
  for (const auto& s : specs) refs.push_back(TensorRef{s.name + suffix, s.shape, flat.data() + s.offset});
  return refs;
}


nlohmann::json file_record(const std::string& path) {
  return {{"bytes", fs::file_size(path)}, {"sha256", sha256_file(path)}};
}

// Reads one flat buffer's tensors (names with `suffix`) from a safetensors file into `flat`; the file must
// hold exactly those tensors, with the table's shapes.
void read_flat(const SafetensorsReader& r, const std::vector<ParamSpec>& specs, const std::string& suffix,
               std::vector<float>& flat, bool whole_file) {
  for (const auto& s : specs) {
    auto it = r.tensors().find(s.name + suffix);
    if (it == r.tensors().end())
      fail("{}: tensor {} is missing; the checkpoint was made with another model config", r.path(), s.name + suffix);
    if (it->second.shape != s.shape)
      fail("{}: tensor {} has shape {}, the config expects {}; the checkpoint was made with another model "
           "config", r.path(), s.name + suffix, nlohmann::json(it->second.shape).dump(), nlohmann::json(s.shape).dump());
    r.read(s.name + suffix, std::span<float>(flat.data() + s.offset, s.numel));
  }
  if (whole_file && r.tensors().size() != specs.size())
    fail("{}: holds {} tensors, the config expects {}; the checkpoint was made with another model config", r.path(),
         r.tensors().size(), specs.size());
}

}  // namespace

void write_text_file(const std::string& path, const std::string& text) {
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
    out.flush();
    if (!out) fail("{}: write failed ({})", path, std::strerror(errno));
  }
  fsync_path(path);
}

void add_train_state(nlohmann::ordered_json& j, const TrainState& s) {
  j["step"] = s.step;
  j["updates"] = s.updates;
  j["tokens_seen"] = s.tokens_seen;
  j["loader"] = to_json(s.loader);
  j["skipped"] = {{"total", s.skipped_total}, {"consecutive", s.skipped_consecutive}};
}

TrainState train_state_from_json(const nlohmann::json& j) {
  TrainState s;
  s.step = j.at("step").get<int64_t>();
  s.updates = j.at("updates").get<int64_t>();
  s.tokens_seen = j.at("tokens_seen").get<int64_t>();
  s.loader = loader_position_from_json(j.at("loader"));
  s.skipped_total = j.at("skipped").at("total").get<int64_t>();
  s.skipped_consecutive = j.at("skipped").at("consecutive").get<int64_t>();
  return s;
}

std::string checkpoint_name(int64_t step) { return fmt::format("step_{:08d}", step); }

std::vector<CheckpointEntry> list_checkpoints(const std::string& run_dir) {
  std::vector<CheckpointEntry> out;
  const fs::path dir = fs::path(run_dir) / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || name.size() != 13 || name.rfind("step_", 0) != 0) continue;
    if (name.find_first_not_of("0123456789", 5) != std::string::npos) continue;
    out.push_back({e.path().string(), std::stoll(name.substr(5))});
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.step < b.step; });
  return out;
}

std::string save_checkpoint(const std::string& run_dir, const std::vector<ParamSpec>& specs,
                            const CheckpointTensors& tensors, const TrainState& state, const Config& cfg,
                            const std::vector<CheckpointExtra>& extra) {
  const fs::path parent = fs::path(run_dir) / "checkpoints";
  const std::string name = checkpoint_name(state.step);
  const fs::path tmp = parent / (kTmpPrefix + name), final_dir = parent / name;
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) fail("{}: cannot create ({})", parent.string(), ec.message());
  fs::remove_all(tmp, ec);  // a leftover of a crash during an earlier attempt
  fs::create_directory(tmp, ec);
  if (ec) fail("{}: cannot create ({})", tmp.string(), ec.message());
  try {
    const std::map<std::string, std::string> meta = {{"format", "pt"}, {"step", std::to_string(state.step)}};
    write_safetensors((tmp / kModelFile).string(), tensor_refs(specs, tensors.params, ""), meta);
    maybe_inject_fault(state.step);
    const bool with_optimizer = !tensors.exp_avg.empty();
    if (with_optimizer) {
      std::vector<TensorRef> refs = tensor_refs(specs, tensors.exp_avg, ".exp_avg");
      for (auto& r : tensor_refs(specs, tensors.exp_avg_sq, ".exp_avg_sq")) refs.push_back(r);
      write_safetensors((tmp / kOptimizerFile).string(), refs, meta);
    }
    for (const auto& e : extra) e.write((tmp / e.name).string());
    nlohmann::ordered_json st;
    st["format_version"] = kCheckpointFormatVersion;
    add_train_state(st, state);
    // Every random choice derives from training.seed and a counter kept above: the init from the seed,
    // the data order from (seed, loader.consumed), samples from (seed, step). No generator state is hidden.
    st["rng"] = {{"seed", cfg.training.seed}, {"data_stream_position", state.loader.consumed}};
    st["config"] = to_json(cfg);
    if (!with_optimizer) st["weights_only"] = true;
    st["files"] = {{kModelFile, file_record((tmp / kModelFile).string())}};
    if (with_optimizer) st["files"][kOptimizerFile] = file_record((tmp / kOptimizerFile).string());
    for (const auto& e : extra) st["files"][e.name] = file_record((tmp / e.name).string());
    write_text_file((tmp / kStateFile).string(), st.dump(2) + "\n");
    fsync_path(tmp.string());
    if (fs::exists(final_dir)) fs::remove_all(final_dir);  // re-saving a step replaces its checkpoint
    fs::rename(tmp, final_dir, ec);
    if (ec) fail("{}: rename into place failed ({})", final_dir.string(), ec.message());
    fsync_path(parent.string());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  return final_dir.string();
}

nlohmann::json verify_checkpoint(const std::string& dir) {
  const fs::path d(dir);
  const std::string state_path = (d / kStateFile).string();
  if (!fs::exists(state_path)) fail("{}: missing; the checkpoint is incomplete", state_path);
  nlohmann::json st;
  try {
    std::ifstream in(state_path);
    st = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({}); the checkpoint is damaged", state_path, e.what());
  }
  if (!st.is_object() || st.value("format_version", 0) != kCheckpointFormatVersion)
    fail("{}: format_version {} is not the supported {}", state_path,
         st.is_object() && st.contains("format_version") ? st["format_version"].dump() : "(none)",
         kCheckpointFormatVersion);
  std::vector<std::string> names = {kModelFile, kOptimizerFile};
  if (st.contains("files") && st["files"].is_object())
    for (const auto& [name, rec] : st["files"].items())
      if (name != kModelFile && name != kOptimizerFile) {
        if (name.empty() || name.find('/') != std::string::npos || name.front() == '.')
          fail("{}: files records \"{}\", which is not a file name; the checkpoint is damaged", state_path, name);
        names.push_back(name);  // quantization.json, quantized.safetensors
      }
  for (const std::string& f : names) {
    const std::string p = (d / f).string();
    const bool recorded = st.contains("files") && st["files"].is_object() && st["files"].contains(f);
    if (f == kOptimizerFile && !recorded && st.value("weights_only", false)) continue;  // softpick import
    if (!recorded) fail("{}: no record of {}", state_path, f);
    if (!fs::exists(p)) fail("{}: missing; the checkpoint is incomplete", p);
    const auto& rec = st["files"][f];
    if (!rec.is_object() || !rec.contains("bytes") || !rec["bytes"].is_number_unsigned() || !rec.contains("sha256") ||
        !rec["sha256"].is_string())
      fail("{}: the record of {} is not {{\"bytes\": N, \"sha256\": HEX}}; the checkpoint is damaged", state_path, f);
    const uint64_t size = fs::file_size(p);
    if (size != rec.at("bytes").get<uint64_t>())
      fail("{}: {} bytes, but state.json records {}; the file is truncated or damaged", p, size,
           rec.at("bytes").get<uint64_t>());
    if (sha256_file(p) != rec.at("sha256").get<std::string>())
      fail("{}: SHA-256 does not match state.json; the file is damaged", p);
  }
  return st;
}

std::optional<std::string> newest_valid_checkpoint(const std::string& run_dir, nlohmann::json* state) {
  const auto all = list_checkpoints(run_dir);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      nlohmann::json st = verify_checkpoint(it->dir);
      if (state) *state = std::move(st);
      return it->dir;
    } catch (const Error& e) {
      spdlog::warn("skipping damaged checkpoint: {}", e.what());
    }
  }
  if (!all.empty())
    fail("{}: none of its {} checkpoints is valid (see the warnings above); repair or remove them, or start "
         "over with --checkpoint.resume=never --overwrite", run_dir, all.size());
  return std::nullopt;
}

std::string resolve_checkpoint(const std::string& path, nlohmann::json& state) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) fail("{}: no such checkpoint or run directory", path);
  if (fs::exists(fs::path(path) / kStateFile)) {
    state = verify_checkpoint(path);
    return path;
  }
  if (auto dir = newest_valid_checkpoint(path, &state)) return *dir;
  if (fs::exists(fs::path(path) / "config.json") && !fs::exists(fs::path(path) / "checkpoints"))
    fail("{}: a Hugging Face model directory, not a checkpoint; import it first: softpick import {} --out RUN_DIR "
         "(docs/interop.md)", path, path);
  fail("{}: neither a checkpoint (no state.json) nor a run directory with checkpoints/step_*", path);
}

TrainState load_checkpoint(const std::string& dir, const std::vector<ParamSpec>& specs, size_t flat_elements,
                           CheckpointTensors& out, bool with_optimizer) {
  const nlohmann::json st = verify_checkpoint(dir);
  out.params.assign(flat_elements, 0.0f);
  read_flat(SafetensorsReader((fs::path(dir) / kModelFile).string()), specs, "", out.params, true);
  TrainState s;
  if (!with_optimizer) return s;
  if (!st["files"].contains(kOptimizerFile)) {  // weights only: AdamW starts from zero moments
    out.exp_avg.assign(flat_elements, 0.0f);
    out.exp_avg_sq.assign(flat_elements, 0.0f);
  } else {
    // one file holds both moments: each half must be complete, and nothing else may be there
    SafetensorsReader r((fs::path(dir) / kOptimizerFile).string());
    out.exp_avg.assign(flat_elements, 0.0f);
    out.exp_avg_sq.assign(flat_elements, 0.0f);
    read_flat(r, specs, ".exp_avg", out.exp_avg, false);
    read_flat(r, specs, ".exp_avg_sq", out.exp_avg_sq, false);
    if (r.tensors().size() != 2 * specs.size())
      fail("{}: holds {} tensors, the config expects {}", r.path(), r.tensors().size(), 2 * specs.size());
  }
  try {
    s = train_state_from_json(st);
  } catch (const nlohmann::json::exception& e) {
    fail("{}/{}: incomplete training state ({})", dir, kStateFile, e.what());
  } catch (const Error& e) {
    fail("{}/{}: {}", dir, kStateFile, e.what());
  }
  return s;
}

void load_weights(const std::string& dir, Model& model) {
  CheckpointTensors t;
  load_checkpoint(dir, model.specs(), model.params().numel, t, /*with_optimizer=*/false);
  model.backend().upload(model.params(), std::span<const float>(t.params));
}

Config checkpoint_config(const nlohmann::json& st, const std::string& dir) {
  Config c;
  c.source = (fs::path(dir) / kStateFile).string() + " (config)";
  if (!st.contains("config")) fail("{}: no config", c.source);
  merge_json(c, st["config"], c.source);
  resolve(c);
  return c;
}

void rotate_checkpoints(const std::string& run_dir, int64_t keep_latest_k, std::optional<int64_t> keep_every) {
  auto all = list_checkpoints(run_dir);
  if (all.empty()) return;
  for (size_t i = 0; i + 1 < all.size(); ++i) {  // the newest (last) always stays
    const bool recent = all.size() - i <= size_t(keep_latest_k);
    const bool milestone = keep_every && all[i].step % *keep_every == 0;
    if (recent || milestone) continue;
    std::error_code ec;
    fs::remove_all(all[i].dir, ec);
    if (ec) spdlog::warn("{}: could not delete an old checkpoint ({})", all[i].dir, ec.message());
  }
}

std::vector<std::string> config_differences(const Config& saved, const Config& now, bool& unsafe) {
  static const std::set<std::string> kUnsafe = {"training.seq_len", "training.seed", "data.layout"};
  const auto a = to_json(saved), b = to_json(now);
  std::vector<std::string> lines;
  unsafe = false;
  for (auto& [section, keys] : a.items())
    for (auto& [key, value] : keys.items()) {
      const auto& other = b[section][key];
      if (value == other) continue;
      const std::string full = section + "." + key;
      const bool bad = section == "model" || kUnsafe.count(full);
      unsafe |= bad;
      lines.push_back(fmt::format("{}: {} -> {}{}", full, value.dump(), other.dump(), bad ? "  (not allowed)" : ""));
    }
  return lines;
}

}  // namespace sp
