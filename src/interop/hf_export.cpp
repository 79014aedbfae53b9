// `softpick export`: a checkpoint as a directory that transformers loads (hf.h, docs/interop.md).
#include "interop/hf.h"

#include "checkpoint/checkpoint.h"
#include "core/check.h"
#include "core/log.h"
#include "data/tokenizer.h"
#include "interop/modeling_files.h"
#include "model/params.h"

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace sp {

namespace {

void write_json(const fs::path& path, const nlohmann::ordered_json& j) {
  write_text_file(path.string(), j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::strict) + "\n");
}

// The token of an id in a tokenizer.json (its added tokens, then its vocabulary), or "" if none.
std::string token_of(const nlohmann::json& tok, int64_t id) {
  for (const auto& a : tok.value("added_tokens", nlohmann::json::array()))
    if (a.value("id", int64_t(-1)) == id) return a.value("content", "");
  const auto vocab = tok.contains("model") ? tok["model"].value("vocab", nlohmann::json()) : nlohmann::json();
  if (vocab.is_object())
    for (const auto& [piece, v] : vocab.items()) if (v.is_number_integer() && v.get<int64_t>() == id) return piece;
  return "";
}

// tokenizer.json, tokenizer_config.json and special_tokens_map.json for the run's vocabulary.
void write_tokenizer(const fs::path& out, const Config& c) {
  nlohmann::ordered_json tok;
  if (c.data.tokenizer == "byte") {
    tok = byte_tokenizer_json();
  } else {
    std::ifstream in(c.data.tokenizer);
    if (!in)
      usage_fail("{}: the checkpoint's tokenizer (data.tokenizer) is not on this machine; copy it there, or pass "
                 "--tokenizer byte|PATH", c.data.tokenizer);
    try {
      tok = nlohmann::ordered_json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      fail("{}: not valid JSON ({})", c.data.tokenizer, e.what());
    }
  }
  write_json(out / "tokenizer.json", tok);
  nlohmann::ordered_json cfg = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                                {"model_max_length", c.training.seq_len},
                                {"clean_up_tokenization_spaces", false}};
  nlohmann::ordered_json specials = nlohmann::ordered_json::object();
  for (auto [key, id] : {std::pair{"bos_token", c.model.bos_token_id}, std::pair{"eos_token", c.model.eos_token_id}}) {
    const std::string t = token_of(tok, id);
    if (!t.empty()) cfg[key] = specials[key] = t;
  }
  if (c.data.tokenizer == "byte") {
    cfg["unk_token"] = specials["unk_token"] = "<unk>";
    cfg["split_special_tokens"] = true;  // the text "<s>" is its bytes, as softpick encodes it, not BOS
  }
  write_json(out / "tokenizer_config.json", cfg);
  write_json(out / "special_tokens_map.json", specials);
}

}  // namespace

std::string export_hf(const std::string& checkpoint_or_run, const std::string& out_dir, const ExportOptions& opt) {
  nlohmann::json state;
  const std::string dir = resolve_checkpoint(checkpoint_or_run, state);
  Config c = checkpoint_config(state, dir);
  if (!opt.tokenizer.empty()) c.data.tokenizer = opt.tokenizer;
  const int64_t step = state.value("step", int64_t(0));
  const std::vector<ParamSpec> specs = param_specs(c.model);
  CheckpointTensors t;
  load_checkpoint(dir, specs, flat_size(specs), t, /*with_optimizer=*/false);

  fs::path out = fs::absolute(out_dir).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();  // "DIR/"
  if (out.filename().empty() || out == out.root_path()) usage_fail("--out {}: not a directory name", out_dir);
  std::error_code ec;
  if (fs::exists(out, ec) && !(fs::is_directory(out, ec) && fs::is_empty(out, ec)) && !opt.overwrite)
    usage_fail("--out {}: exists and is not an empty directory; remove it, choose another --out, or pass "
               "--overwrite", out.string());
  const fs::path tmp = out.parent_path() / (".tmp-" + out.filename().string());
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) fail("{}: cannot create ({})", tmp.string(), ec.message());
  try {
    std::vector<TensorRef> refs;
    for (const auto& s : specs) refs.push_back(TensorRef{s.name, s.shape, t.params.data() + s.offset});
    write_safetensors((tmp / "model.safetensors").string(), refs, {{"format", "pt"}}, opt.dtype);
    write_json(tmp / "config.json", hf_config_json(c, opt.dtype, step));
    write_json(tmp / "generation_config.json", {{"bos_token_id", c.model.bos_token_id},
                                                {"eos_token_id", c.model.eos_token_id},
                                                {"pad_token_id", c.model.eos_token_id}});
    write_tokenizer(tmp, c);
    if (!is_plain_llama(c.model))
      for (const auto& f : kHfModelingFiles) write_text_file((tmp / f.name).string(), f.text);
    // an existing export is moved aside and deleted only once the new one is in place
    const fs::path old = out.parent_path() / (".old-" + out.filename().string());
    fs::remove_all(old, ec);
    if (fs::exists(out)) {
      fs::rename(out, old, ec);
      if (ec) fail("{}: cannot move the existing directory aside ({})", out.string(), ec.message());
    }
    fs::rename(tmp, out, ec);
    if (ec) {
      std::error_code ec2;
      if (fs::exists(old)) fs::rename(old, out, ec2);
      fail("{}: cannot move the export into place ({})", out.string(), ec.message());
    }
    fs::remove_all(old, ec);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  spdlog::info("exported {} (step {}, {}, {}) to {}", dir, step, attention_label(c.model),
               dtype_name(opt.dtype), out.string());
  return dir;
}

}  // namespace sp
