// The config.json and tokenizer files of Hugging Face directories, and the names of their tensors, in both
// directions (hf.h, docs/interop.md).
#include "interop/hf.h"

#include "core/check.h"
#include "data/tokenizer.h"

#include <string_view>
#include <type_traits>

namespace sp {

bool is_plain_llama(const ModelConfig& m) { return m.attention == "softmax" && !m.ssmax && !m.attention_gate; }

nlohmann::ordered_json hf_config_json(const Config& c, TensorDtype dtype, int64_t step) {
  const ModelConfig& m = c.model;
  const bool plain = is_plain_llama(m);
  nlohmann::ordered_json j;
  j["architectures"] = {plain ? "LlamaForCausalLM" : "SoftpickLlamaForCausalLM"};
  j["model_type"] = plain ? "llama" : "softpick_llama";
  if (!plain)
    j["auto_map"] = {{"AutoConfig", "configuration_softpick.SoftpickLlamaConfig"},
                     {"AutoModelForCausalLM", "modeling_softpick.SoftpickLlamaForCausalLM"}};
  j["vocab_size"] = m.vocab_size;
  j["hidden_size"] = m.hidden_size;
  j["intermediate_size"] = *m.intermediate_size;
  j["num_hidden_layers"] = m.num_hidden_layers;
  j["num_attention_heads"] = m.num_heads;
  j["num_key_value_heads"] = *m.num_kv_heads;
  j["head_dim"] = m.hidden_size / m.num_heads;
  j["hidden_act"] = "silu";
  j["max_position_embeddings"] = c.training.seq_len;  // the trained context
  j["rms_norm_eps"] = m.norm_eps;
  j["rope_theta"] = m.rope_theta;  // transformers 4 reads this key, 5 the next one
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", m.rope_theta}};
  j["tie_word_embeddings"] = m.tie_word_embeddings;
  j["bos_token_id"] = m.bos_token_id;
  j["eos_token_id"] = m.eos_token_id;
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  j["initializer_range"] = m.initializer_range;
  j["use_cache"] = true;
  j["dtype"] = dtype == TensorDtype::BF16 ? "bfloat16" : "float32";
  j["softpick_attention"] = m.attention;
  j["softpick_ssmax"] = m.ssmax;
  j["softpick_ssmax_init"] = m.ssmax_init;
  j["softpick_attention_gate"] = m.attention_gate;
  j["softpick_eps"] = m.softpick_eps;
  j["softpick_tokenizer"] = c.data.tokenizer == "byte" ? "byte" : "tokenizer.json";
  j["softpick_step"] = step;
  j["softpick_config"] = to_json(c);  // the whole run config, so that `softpick import` restores it
  return j;
}

nlohmann::ordered_json byte_tokenizer_json() {
  const char* specials[] = {"<unk>", "<s>", "</s>"};
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (int id = 0; id < kByteOffset; ++id) {
    added.push_back({{"id", id}, {"content", specials[id]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
    vocab[specials[id]] = id;
  }
  for (int b = 0; b < 256; ++b) vocab[byte_level_piece(uint8_t(b))] = b + kByteOffset;
  // the whole text is one pre-token of byte-level characters; BPE without merges makes each its own token
  const nlohmann::ordered_json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false},
                                             {"trim_offsets", false}, {"use_regex", false}};
  nlohmann::ordered_json bos = {{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}};
  nlohmann::ordered_json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = added;
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = byte_level;
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {bos, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"pair", {bos, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, bos, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
  j["decoder"] = byte_level;
  j["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", "<unk>"},
                {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", false},
                {"byte_fallback", false}, {"ignore_merges", false}, {"vocab", vocab},
                {"merges", nlohmann::ordered_json::array()}};
  return j;
}

namespace {

// Typed reads of config.json keys: absent or null gives the fallback, a wrong type an Error naming the key.
class Keys {
public:
  Keys(const nlohmann::json& j, const std::string& path) : j_(j), path_(path) {}

  template <class T>
  T get(const char* key, T fallback) const {
    if (!j_.contains(key) || j_[key].is_null()) return fallback;
    if constexpr (std::is_same_v<T, nlohmann::json>) {
      return j_[key];
    } else {
      T v;
      if (!from_json_value(j_[key], v))  // the strict reads of config files: 32.7 is no integer
        usage_fail("{}: key {} = {} has the wrong type", path_, key, j_[key].dump());
      return v;
    }
  }
  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  [[noreturn]] void refuse(const char* key, const std::string& why) const {
    usage_fail("{}: {} = {}: {}; softpick.cpp cannot represent this model", path_, key,
               j_.contains(key) ? j_[key].dump() : "(absent)", why);
  }
  void require_false(const char* key) const {
    if (get<bool>(key, false)) refuse(key, "softpick.cpp models have no such feature");
  }

private:
  const nlohmann::json& j_;
  const std::string& path_;
};

// Llama keys (transformers 4 and 5 spellings) into the model config.
void read_llama(const Keys& k, ModelConfig& m) {
  m.vocab_size = k.get<int64_t>("vocab_size", 32000);
  m.hidden_size = k.get<int64_t>("hidden_size", 4096);
  m.num_hidden_layers = k.get<int64_t>("num_hidden_layers", 32);
  m.num_heads = k.get<int64_t>("num_attention_heads", 32);
  m.num_kv_heads = k.get<int64_t>("num_key_value_heads", m.num_heads);
  m.intermediate_size = k.get<int64_t>("intermediate_size", 11008);
  m.norm_eps = k.get<double>("rms_norm_eps", 1e-6);
  m.initializer_range = k.get<double>("initializer_range", m.initializer_range);
  m.tie_word_embeddings = k.get<bool>("tie_word_embeddings", false);
  m.bos_token_id = k.get<int64_t>("bos_token_id", 1);
  if (k.has("eos_token_id") && !k.get<nlohmann::json>("eos_token_id", {}).is_number_integer())
    k.refuse("eos_token_id", "one end-of-document id is supported");
  m.eos_token_id = k.get<int64_t>("eos_token_id", 2);
  const auto act = k.get<std::string>("hidden_act", "silu");
  if (act != "silu" && act != "swish") k.refuse("hidden_act", "the MLP is SwiGLU with silu");
  k.require_false("attention_bias");
  k.require_false("mlp_bias");
  if (m.num_heads > 0 && k.get<int64_t>("head_dim", m.hidden_size / m.num_heads) != m.hidden_size / m.num_heads)
    k.refuse("head_dim", "the head dimension must be hidden_size / num_attention_heads");
  m.rope_theta = k.get<double>("rope_theta", 10000.0);
  const auto rope = k.get<nlohmann::json>("rope_parameters", nlohmann::json::object());
  if (rope.is_object() && rope.contains("rope_theta")) {
    if (!rope["rope_theta"].is_number()) k.refuse("rope_parameters", "rope_theta must be a number");
    m.rope_theta = rope["rope_theta"].get<double>();
  }
  if (rope.is_object() && rope.value("rope_type", "default") != "default")
    k.refuse("rope_parameters", "only the default RoPE (no scaling) is supported");
  if (k.has("rope_scaling")) k.refuse("rope_scaling", "only the default RoPE (no scaling) is supported");
}

// fla's attn_impl values (and model types) to a normaliser, SSMax and the gate.
void read_fla_attention(const Keys& k, const std::string& model_type, ModelConfig& m) {
  const std::string impl = k.get<std::string>("attn_impl", "flash_attn");
  auto is = [&](std::initializer_list<const char*> names) {
    for (const char* n : names) if (impl == n) return true;
    return false;
  };
  m.ssmax = impl.find("scaled") != std::string::npos;
  if (model_type == "gated_attention_transformer") {
    if (!is({"gated_attn", "parallel_gated_attn", "naive_gated_attn"})) k.refuse("attn_impl", "unknown gated attention");
    if (!k.get<bool>("elementwise_gate", true)) k.refuse("elementwise_gate", "only the elementwise gate is supported");
    m.attention = "softmax";
    m.attention_gate = true;
  } else if (model_type == "gpt_oss_sink_transformer") {
    m.attention = "sink";
  } else if (model_type == "softmax_plus_one_transformer" || impl == "parallel_softmax_plus_one_attn") {
    m.attention = "softmax1";
  } else if (is({"flash_attn", "parallel_attn", "naive_attn", "parallel_scaled_attn", "naive_scaled_attn"})) {
    m.attention = "softmax";
  } else if (is({"parallel_softpick_attn", "naive_softpick_attn", "parallel_scaled_softpick_attn",
                 "naive_scaled_softpick_attn"})) {
    m.attention = "softpick";
  } else if (is({"parallel_rectified_attn", "naive_rectified_attn"})) {
    m.attention = "rectified";
  } else {
    k.refuse("attn_impl", "not one of fla's softmax, scaled, softpick, scaled softpick, rectified, softmax+1, "
                          "gated or sink attentions");
  }
}

void read_fla(const Keys& k, const std::string& model_type, ModelConfig& m) {
  m.vocab_size = k.get<int64_t>("vocab_size", 32000);
  m.hidden_size = k.get<int64_t>("hidden_size", 2048);
  m.num_hidden_layers = k.get<int64_t>("num_hidden_layers", 24);
  m.num_heads = k.get<int64_t>("num_heads", 32);
  m.num_kv_heads = k.get<int64_t>("num_kv_heads", m.num_heads);
  // fla's GatedMLP: int(C * hidden_ratio * 2/3) rounded up to a multiple of 256, unless given
  const double ratio = k.get<double>("hidden_ratio", 4.0);
  if (!(ratio > 0 && ratio <= 64)) k.refuse("hidden_ratio", "must be in (0, 64]");
  if (m.hidden_size < 1 || m.hidden_size > (int64_t(1) << 20)) k.refuse("hidden_size", "must be in [1, 2^20]");
  m.intermediate_size = k.get<int64_t>("intermediate_size", swiglu_width(m.hidden_size, ratio));
  m.norm_eps = k.get<double>("norm_eps", 1e-6);
  m.rope_theta = k.get<double>("rope_theta", 10000.0);
  m.initializer_range = k.get<double>("initializer_range", 0.006);
  m.tie_word_embeddings = k.get<bool>("tie_word_embeddings", false);
  m.bos_token_id = k.get<int64_t>("bos_token_id", 1);
  m.eos_token_id = k.get<int64_t>("eos_token_id", 2);
  const auto act = k.get<std::string>("hidden_act", "swish");
  if (act != "swish" && act != "silu") k.refuse("hidden_act", "the MLP is SwiGLU with silu");
  k.require_false("qkv_bias");
  k.require_false("qk_norm");
  if (k.has("window_size")) k.refuse("window_size", "sliding-window attention is not supported");
  read_fla_attention(k, model_type, m);
}

constexpr std::string_view kFlaTypes[] = {"transformer", "softmax_plus_one_transformer",
                                          "gated_attention_transformer", "gpt_oss_sink_transformer"};

}  // namespace

Config config_from_hf(const nlohmann::json& hf, const std::string& path, std::string& format) {
  if (!hf.is_object()) usage_fail("{}: not a JSON object", path);
  const Keys k(hf, path);
  const std::string type = k.get<std::string>("model_type", "");
  Config c;
  c.source = path;
  if (type == "softpick_llama" && k.has("softpick_config")) {
    // our own export: the run config it was trained with; the Llama keys below still decide the shape
    merge_json(c, hf["softpick_config"], path + " (softpick_config)");
  }
  if (type == "llama" || type == "softpick_llama") {
    format = type;
    read_llama(k, c.model);
    // absent keys: plain softmax for llama; for softpick_llama the softpick_config's values, else the
    // defaults that softpick_hf's SoftpickLlamaConfig also has
    const bool llama = type == "llama";
    c.model.attention = k.get<std::string>("softpick_attention", llama ? "softmax" : c.model.attention);
    c.model.ssmax = k.get<bool>("softpick_ssmax", llama ? false : c.model.ssmax);
    c.model.ssmax_init = k.get<double>("softpick_ssmax_init", c.model.ssmax_init);
    c.model.attention_gate = k.get<bool>("softpick_attention_gate", llama ? false : c.model.attention_gate);
    c.model.softpick_eps = k.get<double>("softpick_eps", c.model.softpick_eps);
    if (type == "llama" && !is_plain_llama(c.model))
      k.refuse("softpick_attention", "model_type llama is plain softmax attention; the other attentions are "
                                     "model_type softpick_llama");
  } else if (std::find(std::begin(kFlaTypes), std::end(kFlaTypes), type) != std::end(kFlaTypes)) {
    format = "fla";
    read_fla(k, type, c.model);
  } else {
    k.refuse("model_type", "supported: llama, softpick_llama, and fla's transformer, softmax_plus_one_transformer, "
                           "gated_attention_transformer and gpt_oss_sink_transformer");
  }
  // the trained context, capped so that the inference commands' default KV cache stays small
  if (k.has("max_position_embeddings"))
    c.training.seq_len = std::min<int64_t>(k.get<int64_t>("max_position_embeddings", 0), 8192);
  if (!k.has("softpick_tokenizer") || k.get<std::string>("softpick_tokenizer", "") != "byte")
    c.data.tokenizer = "tokenizer.json";  // set to the copied file by the importer
  else
    c.data.tokenizer = "byte";
  return c;
}

std::string checkpoint_name_of(const std::string& format, const std::string& hf_name) {
  if (format != "fla") return hf_name;
  static const std::pair<std::string_view, std::string_view> renames[] = {
      {"model.embeddings.", "model.embed_tokens."}, {".attn_norm.", ".input_layernorm."},
      {".mlp_norm.", ".post_attention_layernorm."}, {".attn.s", ".self_attn.ssmax_scale"},
      {".attn.", ".self_attn."}};
  std::string n = hf_name;
  for (const auto& [from, to] : renames) {
    const size_t at = n.find(from);
    if (at == std::string::npos) continue;
    if (from == ".attn.s" && at + from.size() != n.size()) continue;  // only the tensor named exactly attn.s
    n.replace(at, from.size(), to);
  }
  return n;
}

}  // namespace sp
