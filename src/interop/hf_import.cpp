// `softpick import`: a transformers Llama or fla directory as a softpick.cpp checkpoint (hf.h,
// docs/interop.md).
#include "interop/hf.h"

#include "checkpoint/checkpoint.h"
#include "core/check.h"
#include "core/log.h"
#include "model/params.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

namespace fs = std::filesystem;

namespace sp {

namespace {

nlohmann::json read_json_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) usage_fail("{}: missing; an HF model directory holds config.json and model.safetensors", path.string());
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    usage_fail("{}: not valid JSON ({})", path.string(), e.what());
  }
}

// The safetensors files of the directory: model.safetensors, or the shards its index names.
std::vector<fs::path> tensor_files(const fs::path& dir) {
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index)) {
    const nlohmann::json j = read_json_file(index);
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      usage_fail("{}: no weight_map object", index.string());
    std::set<std::string> names;
    for (const auto& [tensor, file] : j["weight_map"].items()) {
      if (!file.is_string()) usage_fail("{}: weight_map[{}] is not a file name", index.string(), tensor);
      const std::string f = file.get<std::string>();
      if (f.empty() || f == "." || f == ".." || f.find('/') != std::string::npos)
        usage_fail("{}: weight_map[{}] = \"{}\" is not a file name in the directory", index.string(), tensor, f);
      names.insert(f);
    }
    std::vector<fs::path> files;
    for (const auto& n : names) {
      if (!fs::exists(dir / n)) usage_fail("{}: the shard {} that the index names is missing", index.string(), n);
      files.push_back(dir / n);
    }
    return files;
  }
  if (fs::exists(dir / "model.safetensors")) return {dir / "model.safetensors"};
  if (fs::exists(dir / "pytorch_model.bin") || fs::exists(dir / "pytorch_model.bin.index.json"))
    usage_fail("{}: holds PyTorch .bin weights; only safetensors are read: convert them (load with transformers "
               "and save_pretrained(DIR, safe_serialization=True)) and import again", dir.string());
  usage_fail("{}: no model.safetensors or model.safetensors.index.json", dir.string());
}

// Tensors of HF directories that are not parameters: RoPE tables and fla's SSMax log table.
bool is_buffer(const std::string& name) {
  return name.ends_with(".rotary_emb.inv_freq") || name.ends_with(".attn.logn");
}

}  // namespace

std::string import_hf(const std::string& hf_dir, const std::string& run_dir, const std::vector<std::string>& overrides) {
  const fs::path dir(hf_dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) usage_fail("{}: not a directory", hf_dir);
  const fs::path config_path = dir / "config.json";
  std::string format;
  Config c = config_from_hf(read_json_file(config_path), config_path.string(), format);
  const fs::path run = fs::absolute(run_dir).lexically_normal();
  const std::string copied_tokenizer = (run / "tokenizer.json").string();
  if (c.data.tokenizer != "byte") c.data.tokenizer = copied_tokenizer;
  c.training.run_dir = run.string();
  for (const auto& o : overrides) apply_override(c, o);
  resolve(c);
  const bool copy_tokenizer = c.data.tokenizer == copied_tokenizer;
  if (!list_checkpoints(run.string()).empty())
    usage_fail("--out {}: already has checkpoints; import into a new run directory", run.string());
  const std::vector<fs::path> files = tensor_files(dir);

  const std::vector<ParamSpec> specs = param_specs(c.model);
  std::map<std::string, const ParamSpec*> by_name;
  for (const auto& s : specs) by_name[s.name] = &s;
  CheckpointTensors t;
  try {
    t.params.assign(flat_size(specs), 0.0f);
  } catch (const std::bad_alloc&) {
    usage_fail("{}: a model of {} parameters does not fit in this machine's memory", config_path.string(),
               flat_size(specs));
  }
  std::map<std::string, std::string> source_of;  // checkpoint tensor -> the directory's tensor that filled it
  std::vector<float> tied_head;                    // a tied model's lm_head.weight, if the directory has one
  const int64_t HD = c.model.hidden_size;  // H * D: the q rows of fla's gated q_proj
  for (const fs::path& file : files) {
    const SafetensorsReader r(file.string());
    for (const auto& [name, info] : r.tensors()) {
      if (is_buffer(name)) continue;
      const std::string target = checkpoint_name_of(format, name);
      if (c.model.tie_word_embeddings && target == "lm_head.weight") {  // must be the embedding: checked below
        tied_head.resize(info.numel());
        r.read(name, tied_head);
        continue;
      }
      auto read_into = [&](const std::string& to, size_t row0, size_t rows) {
        const ParamSpec& s = *by_name.at(to);
        if (source_of.count(to))
          usage_fail("{}: tensor {} and tensor {} both give {}; the directory holds one model's tensors twice",
                     file.string(), source_of[to], name, to);
        source_of[to] = name;
        const size_t cols = s.numel / size_t(s.shape[0]);
        std::vector<float> all(info.numel());
        r.read(name, all);
        std::copy_n(all.begin() + row0 * cols, rows * cols, t.params.begin() + s.offset);
      };
      const bool fla_gate = format == "fla" && c.model.attention_gate && target.ends_with(".self_attn.q_proj.weight");
      auto it = by_name.find(target);
      if (it == by_name.end())
        usage_fail("{}: tensor {} has no place in this model ({}); it holds something softpick.cpp does not "
                   "represent", file.string(), name, attention_label(c.model));
      const ParamSpec& s = *it->second;
      // fla's SSMax scale is (H, 1) and its gated q_proj is (H*D + H*D, C), q rows then gate rows
      std::vector<int64_t> want = s.shape;
      if (fla_gate) want[0] += HD;
      const bool ok = info.shape == want || (s.role == ParamRole::Scale && info.numel() == s.numel);
      if (!ok)
        usage_fail("{}: tensor {} has shape {}, {} expects {} for {}", file.string(), name,
                   nlohmann::json(info.shape).dump(), config_path.string(), nlohmann::json(want).dump(), s.name);
      if (fla_gate) {
        read_into(target, 0, size_t(HD));
        read_into(target.substr(0, target.size() - std::string("q_proj.weight").size()) + "gate_proj.weight",
                  size_t(HD), size_t(HD));
      } else {
        read_into(target, 0, size_t(s.shape[0]));
      }
    }
  }
  for (const auto& s : specs)
    if (!source_of.count(s.name))
      usage_fail("{}: no tensor for {} (shape {}); the directory is incomplete or holds another model than its "
                 "config.json describes", dir.string(), s.name, nlohmann::json(s.shape).dump());
  if (!tied_head.empty()) {
    const ParamSpec& e = *by_name.at("model.embed_tokens.weight");
    if (tied_head.size() != e.numel || !std::equal(tied_head.begin(), tied_head.end(), t.params.begin() + e.offset))
      usage_fail("{}: tie_word_embeddings is true but lm_head.weight differs from the embedding; set it to false "
                 "if the model has its own head", config_path.string());
  }

  if (copy_tokenizer) {
    fs::create_directories(run, ec);
    if (fs::exists(dir / "tokenizer.json")) {
      fs::copy_file(dir / "tokenizer.json", run / "tokenizer.json", fs::copy_options::overwrite_existing, ec);
      if (ec) fail("{}: cannot copy the tokenizer ({})", (run / "tokenizer.json").string(), ec.message());
    } else {
      spdlog::warn("{}: no tokenizer.json; samples will print token ids (pass --tokenizer to sample and eval, or "
                   "import again with --data.tokenizer=byte for a byte-level model)", dir.string());
    }
  }
  std::string out;
  try {
    out = save_checkpoint(run.string(), specs, t, TrainState{}, c);
  } catch (...) {
    if (copy_tokenizer) fs::remove(run / "tokenizer.json", ec);
    throw;
  }
  spdlog::info("imported {} ({} format, {}, {} tensors) into {}", dir.string(), format, attention_label(c.model),
               specs.size(), out);
  return out;
}

}  // namespace sp
