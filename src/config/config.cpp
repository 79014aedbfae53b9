#include "config/config.h"

#include "core/check.h"
#include "model/params.h"

#include <glob.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <set>

namespace sp {

using nlohmann::json;

namespace {

// ---- one small codec per field type: its name, JSON reading, text parsing, range check ----

const char* type_name(const int64_t&) { return "an integer"; }
const char* type_name(const double&) { return "a number"; }
const char* type_name(const bool&) { return "true or false"; }
const char* type_name(const std::string&) { return "a string"; }
const char* type_name(const std::optional<int64_t>&) { return "an integer or null"; }

}  // namespace

bool from_json_value(const json& j, int64_t& out) {
  if (j.is_number_unsigned() && j.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) return false;
  if (j.is_number_integer()) { out = j.get<int64_t>(); return true; }
  if (j.is_number_float()) {  // accept 1e5 and 100000.0, not 2.5
    double d = j.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e18) { out = int64_t(d); return true; }
  }
  return false;
}
bool from_json_value(const json& j, double& out) {
  if (!j.is_number()) return false;
  out = j.get<double>();
  return true;
}
bool from_json_value(const json& j, bool& out) {
  if (!j.is_boolean()) return false;
  out = j.get<bool>();
  return true;
}
bool from_json_value(const json& j, std::string& out) {
  if (!j.is_string()) return false;
  out = j.get<std::string>();
  return true;
}
namespace {

using sp::from_json_value;  // the public overloads above, next to this one

bool from_json_value(const json& j, std::optional<int64_t>& out) {
  if (j.is_null()) { out.reset(); return true; }
  int64_t v;
  if (!from_json_value(j, v)) return false;
  out = v;
  return true;
}

bool from_text(const std::string& s, int64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec == std::errc() && p == s.data() + s.size()) return true;
  try {  // "1e5" style integers
    return from_json_value(json::parse(s), out);
  } catch (const json::exception&) {
    return false;
  }
}
bool from_text(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}
bool from_text(const std::string& s, bool& out) {
  if (s == "true" || s == "1") { out = true; return true; }
  if (s == "false" || s == "0") { out = false; return true; }
  return false;
}
bool from_text(const std::string& s, std::string& out) {
  out = s;
  return true;
}
bool from_text(const std::string& s, std::optional<int64_t>& out) {
  if (s == "null") { out.reset(); return true; }
  int64_t v;
  if (!from_text(s, v)) return false;
  out = v;
  return true;
}

nlohmann::ordered_json to_json_value(const std::optional<int64_t>& v) {
  return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
}
template <class T>
nlohmann::ordered_json to_json_value(const T& v) { return nlohmann::ordered_json(v); }

std::string full_key(const FieldSpec& f) { return std::string(f.section) + "." + f.key; }

// Range and choice checks. Returns an empty string when the value is acceptable.
std::string range_problem(const FieldSpec& f, double v) {
  if (!std::isfinite(v)) return fmt::format("{} must be finite", full_key(f));
  if (v < f.min || v > f.max)
    return fmt::format("{} = {} is out of range [{}, {}]", full_key(f), v, f.min, f.max);
  return {};
}
std::string value_problem(const FieldSpec& f, const int64_t& v) { return range_problem(f, double(v)); }
std::string value_problem(const FieldSpec& f, const double& v) { return range_problem(f, v); }
std::string value_problem(const FieldSpec&, const bool&) { return {}; }
std::string value_problem(const FieldSpec& f, const std::optional<int64_t>& v) {
  return v ? range_problem(f, double(*v)) : std::string();
}
std::string value_problem(const FieldSpec& f, const std::string& v) {
  if (f.choices.empty() || f.open_choices) return v.empty() ? full_key(f) + " must not be empty" : "";
  if (std::find(f.choices.begin(), f.choices.end(), v) != f.choices.end()) return {};
  std::string list;
  for (auto& c : f.choices) list += (list.empty() ? "" : ", ") + c;
  return fmt::format("{} = \"{}\" is not one of: {}", full_key(f), v, list);
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::vector<std::string> all_keys() {
  std::vector<std::string> keys;
  Config c;
  visit_fields(c, [&](const FieldSpec& f, auto&) { keys.push_back(full_key(f)); });
  return keys;
}

// " (did you mean X?)" for the candidate closest to `wrong`, or "" if none is close. A candidate's part
// after the first '.' is compared too, so "hiden_size" finds "model.hidden_size".
std::string suggestion(const std::string& wrong, const std::vector<std::string>& candidates) {
  auto tail = [](const std::string& s) { return s.substr(s.find('.') + 1); };
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& k : candidates) {
    size_t d = std::min(edit_distance(wrong, k), edit_distance(tail(wrong), tail(k)));
    if (d < best_d) { best_d = d; best = k; }
  }
  if (best_d <= std::max<size_t>(2, wrong.size() / 4)) return " (did you mean " + best + "?)";
  return "";
}
std::string suggestion(const std::string& wrong) { return suggestion(wrong, all_keys()); }

std::set<std::string> section_names() {
  std::set<std::string> s;
  Config c;
  visit_fields(c, [&](const FieldSpec& f, auto&) { s.insert(f.section); });
  return s;
}

}  // namespace

int64_t swiglu_width(int64_t hidden_size, double hidden_ratio) {
  int64_t w = int64_t(double(hidden_size) * hidden_ratio * 2.0 / 3.0);
  return (w + 255) / 256 * 256;
}

void merge_json(Config& c, const json& j, const std::string& origin) {
  if (!j.is_object()) usage_fail("{}: the top level must be a JSON object of sections", origin);
  auto sections = section_names();
  std::set<std::string> known = {};
  for (auto& k : all_keys()) known.insert(k);
  for (auto& [section, body] : j.items()) {
    if (!sections.count(section))
      usage_fail("{}: unknown section \"{}\"{}", origin, section,
                 suggestion(section, std::vector<std::string>(sections.begin(), sections.end())));
    if (!body.is_object()) usage_fail("{}: section \"{}\" must be a JSON object", origin, section);
    for (auto& [key, value] : body.items()) {
      std::string fk = section + "." + key;
      if (!known.count(fk)) usage_fail("{}: unknown key \"{}\"{}", origin, fk, suggestion(fk));
    }
  }
  visit_fields(c, [&](const FieldSpec& f, auto& field) {
    if (!j.contains(f.section) || !j[f.section].contains(f.key)) return;
    const json& v = j[f.section][f.key];
    if (!from_json_value(v, field))
      usage_fail("{}: {} must be {}, got {}", origin, full_key(f), type_name(field), v.dump());
    if (auto p = value_problem(f, field); !p.empty()) usage_fail("{}: {}", origin, p);
  });
}

void apply_override(Config& c, const std::string& arg) {
  std::string a = arg.rfind("--", 0) == 0 ? arg.substr(2) : arg;
  auto eq = a.find('=');
  if (eq == std::string::npos)
    usage_fail("override \"{}\" needs a value: write --section.key=value", arg);
  std::string key = a.substr(0, eq), text = a.substr(eq + 1);
  bool found = false;
  visit_fields(c, [&](const FieldSpec& f, auto& field) {
    if (full_key(f) != key) return;
    found = true;
    if (!from_text(text, field))
      usage_fail("override --{}={}: {} must be {}", key, text, key, type_name(field));
    if (auto p = value_problem(f, field); !p.empty()) usage_fail("override --{}: {}", a, p);
  });
  if (!found) usage_fail("override --{}: unknown key \"{}\"{}", a, key, suggestion(key));
}

void resolve(Config& c) {
  auto& m = c.model;
  const std::string& src = c.source;
  visit_fields(c, [&](const FieldSpec& f, auto& field) {
    if (auto p = value_problem(f, field); !p.empty()) usage_fail("{}: {}", src, p);
  });
  if (m.hidden_size % m.num_heads != 0)
    usage_fail("{}: model.hidden_size ({}) must be divisible by model.num_heads ({})", src, m.hidden_size,
               m.num_heads);
  int64_t head_dim = m.hidden_size / m.num_heads;
  if (head_dim % 2 != 0)
    usage_fail("{}: head_dim = hidden_size / num_heads = {} must be even for RoPE; change model.hidden_size "
               "or model.num_heads", src, head_dim);
  if (!m.num_kv_heads) m.num_kv_heads = m.num_heads;
  if (m.num_heads % *m.num_kv_heads != 0)
    usage_fail("{}: model.num_heads ({}) must be divisible by model.num_kv_heads ({})", src, m.num_heads,
               *m.num_kv_heads);
  if (!m.intermediate_size) m.intermediate_size = swiglu_width(m.hidden_size);
  if (m.bos_token_id >= m.vocab_size || m.eos_token_id >= m.vocab_size)
    usage_fail("{}: model.bos_token_id ({}) and model.eos_token_id ({}) must be below model.vocab_size ({})",
               src, m.bos_token_id, m.eos_token_id, m.vocab_size);
}

void validate_data_files(const Config& c) {
  for (auto [key, pattern] : {std::pair{"data.train_files", c.data.train_files},
                              std::pair{"data.val_files", c.data.val_files}}) {
    if (glob_files(pattern).empty())
      usage_fail("{}: {} = \"{}\" matches no file; prepare the data first (see docs/data.md) or override "
                 "--{}=PATTERN", c.source, key, pattern, key);
  }
  if (c.data.tokenizer != "byte" && !std::filesystem::exists(c.data.tokenizer))
    usage_fail("{}: data.tokenizer = \"{}\": no such file (use \"byte\" or the path of a tokenizer.json)",
               c.source, c.data.tokenizer);
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  Config c;
  c.source = path;
  std::ifstream in(path);
  if (!in) usage_fail("{}: cannot open the config file ({})", path, std::strerror(errno));
  json j;
  try {
    j = json::parse(in, nullptr, true, /*ignore_comments=*/true);
  } catch (const json::parse_error& e) {
    usage_fail("{}: not valid JSON at byte {}: {}", path, e.byte, e.what());
  }
  merge_json(c, j, path);
  for (auto& o : overrides) apply_override(c, o);
  if (!overrides.empty()) c.source = path + " with command-line overrides";
  resolve(c);
  return c;
}

std::string attention_label(const ModelConfig& m) {
  return m.attention + (m.ssmax ? " + SSMax" : "") + (m.attention_gate ? " + output gate" : "");
}

Derived derive(const Config& c) {
  Derived d;
  const auto& m = c.model;
  d.head_dim = m.hidden_size / m.num_heads;
  for (const auto& p : param_specs(m)) {
    d.params_total += int64_t(p.numel);
    if (p.role != ParamRole::Embedding && p.role != ParamRole::LmHead) d.params_non_embedding += int64_t(p.numel);
    if (p.role == ParamRole::Matmul || p.role == ParamRole::LmHead) d.params_matmul += int64_t(p.numel);
  }
  if (m.tie_word_embeddings) d.params_matmul += m.vocab_size * m.hidden_size;  // the head still multiplies
  d.flops_per_token = 6.0 * double(d.params_matmul) +
                      12.0 * double(m.num_hidden_layers * m.num_heads * d.head_dim * c.training.seq_len);
  d.tokens_per_step_per_rank = c.training.batch_size * c.training.seq_len * c.training.gradient_accumulation_steps;
  return d;
}

nlohmann::ordered_json to_json(const Config& c) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  visit_fields(c, [&](const FieldSpec& f, const auto& field) { j[f.section][f.key] = to_json_value(field); });
  return j;
}

nlohmann::ordered_json to_json(const Config& c, const Derived& d) {
  nlohmann::ordered_json j = to_json(c);
  j["derived"] = {{"head_dim", d.head_dim},
                  {"params_total", d.params_total},
                  {"params_non_embedding", d.params_non_embedding},
                  {"params_matmul", d.params_matmul},
                  {"flops_per_token", d.flops_per_token},
                  {"tokens_per_step_per_rank", d.tokens_per_step_per_rank}};
  return j;
}

std::string config_reference_markdown() {
  std::string out;
  const Config defaults;
  std::string section;
  visit_fields(defaults, [&](const FieldSpec& f, const auto& field) {
    if (section != f.section) {
      section = f.section;
      out += fmt::format("\n### `{}`\n\n| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n", section);
    }
    std::string allowed;
    if (!f.choices.empty()) {
      for (auto& c : f.choices) allowed += (allowed.empty() ? "" : ", ") + ("`" + c + "`");
      if (f.open_choices) allowed += ", or a path";
    } else if (std::isfinite(f.min) || std::isfinite(f.max)) {
      allowed = fmt::format("[{}, {}]", std::isfinite(f.min) ? fmt::format("{}", f.min) : "-inf",
                            std::isfinite(f.max) ? fmt::format("{}", f.max) : "inf");
    }
    std::string type = type_name(field);
    type = type.substr(type.find(' ') + 1);  // "an integer" -> "integer"
    out += fmt::format("| `{}` | {} | `{}` | {} | {} |\n", f.key, type,
                       to_json_value(field).dump(), allowed, f.doc);
  });
  return out;
}

std::vector<std::string> glob_files(const std::string& pattern) {
  glob_t g{};
  std::vector<std::string> out;
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  globfree(&g);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace sp
