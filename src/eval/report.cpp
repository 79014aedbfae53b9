#include "eval/report.h"

#include <spdlog/fmt/fmt.h>

#include <cmath>

namespace sp {

namespace {

std::string format_value(const Metric& m) {
  std::string s = fmt::format("{:.4f}", m.value);
  if (m.stderr_of_mean) s += fmt::format(" ± {:.4f}", *m.stderr_of_mean);
  return s;
}

}  // namespace

std::string format_report(const EvalReport& r) {
  std::string out = fmt::format("checkpoint  {} (step {})\nmodel       {}, {} parameters, context {} tokens{}\n",
                                r.checkpoint, r.step, r.attention_label, r.params, r.context,
                                r.context == r.trained_context ? "" : fmt::format(" (trained at {})", r.trained_context));
  if (r.weights != "full precision" || r.activations != "none")
    out += fmt::format("quantized   weights {}; activations {}\n", r.weights, r.activations);
  if (r.val)
    out += fmt::format("validation  loss {:.4f}, perplexity {:.3f} ({} tokens in {} windows)\n", r.val->loss,
                       std::exp(r.val->loss), r.val->tokens, r.val->windows);
  if (r.tasks.empty()) return out;
  out += fmt::format("\n{:<20} {:<16} {:>7}  {:<18} {}\n", "task", "kind", "n", "metric", "value");
  for (const TaskResult& t : r.tasks) {
    bool first = true;
    auto row = [&](const std::string& metric, const std::string& value) {
      out += first ? fmt::format("{:<20} {:<16} {:>7}  {:<18} {}\n", t.name, t.kind_label, t.examples, metric, value)
                   : fmt::format("{:<46}{:<18} {}\n", "", metric, value);
      first = false;
    };
    for (const Metric& m : t.metrics) row(m.name, format_value(m));
    for (const auto& g : t.groups)
      row(fmt::format("acc @ {}", g.name),
          fmt::format("{:.4f} ({}/{})", double(g.correct) / double(g.total), g.correct, g.total));
  }
  return out;
}

nlohmann::ordered_json to_json(const EvalReport& r) {
  nlohmann::ordered_json j;
  j["type"] = "eval";
  j["checkpoint"] = r.checkpoint;
  j["step"] = r.step;
  j["attention"] = r.attention;
  j["ssmax"] = r.ssmax;
  j["attention_gate"] = r.attention_gate;
  j["params"] = r.params;
  j["context"] = r.context;
  j["trained_context"] = r.trained_context;
  j["quantization"] = r.quantization;
  j["activations"] = r.activations;
  if (r.val)
    j["val"] = {{"files", r.val_files},      {"loss", r.val->loss},       {"perplexity", std::exp(r.val->loss)},
                {"tokens", r.val->tokens},   {"windows", r.val->windows}, {"seconds", r.val->seconds}};
  nlohmann::ordered_json tasks = nlohmann::ordered_json::object();
  for (const TaskResult& t : r.tasks) {
    nlohmann::ordered_json tj;
    tj["file"] = t.path;
    tj["kind"] = t.kind_label;
    tj["examples"] = t.examples;
    for (const Metric& m : t.metrics) {
      tj[m.name] = m.value;
      if (m.stderr_of_mean) tj[m.name + "_stderr"] = *m.stderr_of_mean;
    }
    if (!t.groups.empty()) {
      nlohmann::ordered_json groups = nlohmann::ordered_json::object();
      for (const auto& g : t.groups)
        groups[g.name] = {{"acc", double(g.correct) / double(g.total)}, {"correct", g.correct}, {"total", g.total}};
      tj["groups"] = groups;
    }
    if (!t.outputs.empty()) tj["outputs"] = t.outputs;
    tj["seconds"] = t.seconds;
    tasks[t.name] = tj;
  }
  j["tasks"] = tasks;
  return j;
}

}  // namespace sp
