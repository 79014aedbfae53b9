#include "checkpoint/checkpoint.h"

#include "checkpoint/safetensors.h"
#include "checkpoint/sha256.h"
#include "core/check.h"
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

// Test hook (docs/checkpoints.md): SOFTPICK_FAULT=kill-in-checkpoint:STEP kills the process with SIGKILL
// in the middle of writing the checkpoint of STEP, after the weights and before the rest.
void maybe_inject_fault(int64_t step) {
  const char* f = std::getenv("SOFTPICK_FAULT");
  if (f && std::string(f) == "kill-in-checkpoint:" + std::to_string(step)) std::raise(SIGKILL);
}

// Host copy of a whole flat buffer.
std::vector<float> to_host(Backend& be, Buffer b) {
  std::vector<float> h(b.numel);
  be.download(std::span<float>(h), b);
  return h;
}

std::vector<TensorRef> tensor_refs(const std::vector<ParamSpec>& specs, const std::vector<float>& flat,
                                   const std::string& suffix) {
  std::vector<TensorRef> refs;
  for (const auto& s : specs) refs.push_back(TensorRef{s.name + suffix, s.shape, flat.data() + s.offset});
  return refs;
}

void write_text_file(const std::string& path, const std::string& text) {
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
    out.flush();
    if (!out) fail("{}: write failed ({})", path, std::strerror(errno));
  }
  fsync_path(path);
}

nlohmann::json file_record(const std::string& path) {
  return {{"bytes", fs::file_size(path)}, {"sha256", sha256_file(path)}};
}

// Reads one flat buffer's tensors (names with `suffix`) from a safetensors file into the backend buffer.
void read_flat(const SafetensorsReader& r, const std::vector<ParamSpec>& specs, const std::string& suffix,
               Backend& be, Buffer flat) {
  std::vector<float> host(flat.numel, 0.0f);
  for (const auto& s : specs) {
    auto it = r.tensors().find(s.name + suffix);
    if (it == r.tensors().end())
      fail("{}: tensor {} is missing; the checkpoint was made with another model config", r.path(), s.name + suffix);
    if (it->second.shape != s.shape)
      fail("{}: tensor {} has shape {}, the config expects {}; the checkpoint was made with another model "
           "config", r.path(), s.name + suffix, nlohmann::json(it->second.shape).dump(), nlohmann::json(s.shape).dump());
    r.read(s.name + suffix, std::span<float>(host.data() + s.offset, s.numel));
  }
  if (r.tensors().size() != specs.size())
    fail("{}: holds {} tensors, the config expects {}; the checkpoint was made with another model config", r.path(),
         r.tensors().size(), specs.size());
  be.upload(flat, std::span<const float>(host));
}

}  // namespace

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

std::string save_checkpoint(const std::string& run_dir, Model& model, AdamW& optimizer, const TrainState& state,
                            const Config& cfg) {
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
    Backend& be = model.backend();
    const auto& specs = model.specs();
    const std::map<std::string, std::string> meta = {{"format", "pt"}, {"step", std::to_string(state.step)}};
    {
      const std::vector<float> w = to_host(be, model.params());
      write_safetensors((tmp / kModelFile).string(), tensor_refs(specs, w, ""), meta);
    }
    maybe_inject_fault(state.step);
    {
      const std::vector<float> m = to_host(be, optimizer.m()), v = to_host(be, optimizer.v());
      std::vector<TensorRef> refs = tensor_refs(specs, m, ".exp_avg");
      for (auto& r : tensor_refs(specs, v, ".exp_avg_sq")) refs.push_back(r);
      write_safetensors((tmp / kOptimizerFile).string(), refs, meta);
    }
    nlohmann::ordered_json st;
    st["format_version"] = kCheckpointFormatVersion;
    st["step"] = state.step;
    st["updates"] = state.updates;
    st["tokens_seen"] = state.tokens_seen;
    st["loader"] = to_json(state.loader);
    st["skipped"] = {{"total", state.skipped_total}, {"consecutive", state.skipped_consecutive}};
    // Every random choice derives from training.seed and a counter kept above: the init from the seed,
    // the data order from (seed, loader.consumed), samples from (seed, step). No generator state is hidden.
    st["rng"] = {{"seed", cfg.training.seed}, {"data_stream_position", state.loader.consumed}};
    st["config"] = to_json(cfg);
    st["files"] = {{kModelFile, file_record((tmp / kModelFile).string())},
                   {kOptimizerFile, file_record((tmp / kOptimizerFile).string())}};
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
  for (const char* f : {kModelFile, kOptimizerFile}) {
    const std::string p = (d / f).string();
    if (!st.contains("files") || !st["files"].contains(f)) fail("{}: no record of {}", state_path, f);
    if (!fs::exists(p)) fail("{}: missing; the checkpoint is incomplete", p);
    const auto& rec = st["files"][f];
    const uint64_t size = fs::file_size(p);
    if (size != rec.at("bytes").get<uint64_t>())
      fail("{}: {} bytes, but state.json records {}; the file is truncated or damaged", p, size,
           rec.at("bytes").get<uint64_t>());
    if (sha256_file(p) != rec.at("sha256").get<std::string>())
      fail("{}: SHA-256 does not match state.json; the file is damaged", p);
  }
  return st;
}

TrainState load_checkpoint(const std::string& dir, Model& model, AdamW* optimizer) {
  const nlohmann::json st = verify_checkpoint(dir);
  const auto& specs = model.specs();
  read_flat(SafetensorsReader((fs::path(dir) / kModelFile).string()), specs, "", model.backend(), model.params());
  TrainState s;
  if (!optimizer) return s;
  {
    SafetensorsReader r((fs::path(dir) / kOptimizerFile).string());
    std::vector<ParamSpec> m_specs, v_specs;
    for (const auto& p : specs) {
      m_specs.push_back(p);
      m_specs.back().name += ".exp_avg";
      v_specs.push_back(p);
      v_specs.back().name += ".exp_avg_sq";
    }
    // the file holds both moments: check names and shapes of each half, then the total count
    std::vector<ParamSpec> both = m_specs;
    both.insert(both.end(), v_specs.begin(), v_specs.end());
    for (const auto& p : both) {
      auto it = r.tensors().find(p.name);
      if (it == r.tensors().end() || it->second.shape != p.shape)
        fail("{}: tensor {} is missing or has another shape; the checkpoint was made with another model config",
             r.path(), p.name);
    }
    if (r.tensors().size() != both.size())
      fail("{}: holds {} tensors, the config expects {}", r.path(), r.tensors().size(), both.size());
    std::vector<float> host(model.params().numel, 0.0f);
    for (const auto& [list, buf] : {std::pair{&m_specs, optimizer->m()}, std::pair{&v_specs, optimizer->v()}}) {
      for (const auto& p : *list) r.read(p.name, std::span<float>(host.data() + p.offset, p.numel));
      model.backend().upload(buf, std::span<const float>(host));
    }
  }
  try {
    s.step = st.at("step").get<int64_t>();
    s.updates = st.at("updates").get<int64_t>();
    s.tokens_seen = st.at("tokens_seen").get<int64_t>();
    s.loader = loader_position_from_json(st.at("loader"));
    s.skipped_total = st.at("skipped").at("total").get<int64_t>();
    s.skipped_consecutive = st.at("skipped").at("consecutive").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail("{}/{}: incomplete training state ({})", dir, kStateFile, e.what());
  }
  return s;
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
  static const std::set<std::string> kUnsafe = {"training.seq_len", "training.seed"};
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
