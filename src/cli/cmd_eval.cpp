// softpick eval CKPT [--val SHARDS] [--tasks FILE.jsonl,...] [--passkey-lengths 256,512] [--json OUT]
#include "cli/args.h"
#include "cli/commands.h"
#include "config/config.h"
#include "core/check.h"
#include "core/log.h"
#include "eval/load.h"
#include "eval/passkey.h"
#include "eval/report.h"
#include "eval/scoring.h"
#include "eval/task_file.h"
#include "model/decode.h"
#include "quant/quantize.h"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace sp {

namespace {

// "256,512" -> {256, 512}; every item a positive integer.
std::vector<int64_t> int_list(const std::string& flag, const std::string& text) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    int64_t v = 0;
    auto [p, ec] = std::from_chars(text.data() + start, text.data() + end, v);
    if (ec != std::errc() || p != text.data() + end || v <= 0)
      usage_fail("--{}={}: expected positive integers separated by commas", flag, text);
    out.push_back(v);
    start = end + 1;
  }
  return out;
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  for (size_t start = 0; start <= text.size();) {
    const size_t end = std::min(text.find(',', start), text.size());
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// Written next to its final name, then renamed: a crash never leaves half a report.
void write_json_file(const std::string& path, const nlohmann::ordered_json& j) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::path(path).has_parent_path()) fs::create_directories(fs::path(path).parent_path(), ec);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";  // outputs may hold any bytes
    out.flush();
    if (!out) fail("--json {}: cannot write {} (directory not writable, or disk full)", path, tmp);
  }
  fs::rename(tmp, path, ec);
  if (ec) fail("--json {}: cannot rename {} into place ({})", path, tmp, ec.message());
}

}  // namespace

int cmd_eval(const Argv& argv) {
  const CommandSpec spec{
      "eval", "CKPT [--val SHARDS] [--tasks FILE.jsonl,...] [--passkey-lengths L,...] [--act-quant K] [--json OUT]",
      "Evaluate a checkpoint (or the newest valid checkpoint of a run directory): validation loss, "
      "task files scored as lm-eval-harness scores them, passkey retrieval (docs/evaluation.md).",
      {{"val", "SHARDS", "validation shards (glob): loss and perplexity over their unshuffled windows"},
       {"val-tokens", "N", "at most N predicted validation tokens (default: every window)"},
       {"tasks", "FILES", "task files, comma-separated (JSONL; scripts/export_eval_tasks.py writes them)"},
       {"limit", "N", "only the first N examples of each task file"},
       {"passkey-lengths", "L,...", "passkey retrieval at these context lengths (byte vocabulary)"},
       {"passkey-trials", "N", "passkey prompts per length, at evenly spaced depths (default 5)"},
       {"passkey-seed", "S", "seed of the passkeys (default 0)"},
       {"seq-len", "T", "context in tokens (default: the checkpoint's training.seq_len)"},
       {"tokenizer", "SPEC", "\"byte\" or a tokenizer.json (default: the checkpoint's data.tokenizer)"},
       {"device", "DEVICE", "cpu or cuda (default: the checkpoint's training.device)"},
       {"threads", "N", "CPU threads (default: the checkpoint's training.threads, else all cores)"},
       {"act-quant", "KIND", "fake-quantize the linear layers' inputs: none, int8 or fp8 (e4m3); default: what a "
                             "quantized checkpoint records (int8 weights: LLM.int8), else none"},
       {"act-quant-scope", "S", "token (one scale per row, default) or tensor"},
       {"json", "OUT", "also write the results as JSON"}},
      1, 1};
  const auto parsed = parse_command(spec, argv);
  if (!parsed) return 0;
  const ParsedArgs& a = *parsed;
  if (!a.has("val") && !a.has("tasks") && !a.has("passkey-lengths"))
    usage_fail("nothing to evaluate: pass --val, --tasks or --passkey-lengths\n{}", usage(spec));
  for (const char* f : {"val-tokens", "limit", "passkey-trials", "seq-len", "threads"}) a.get_positive(f);

  InferenceModel im = load_inference_model(a.positional[0], a.get("device").value_or(""),
                                          int(a.get_int("threads").value_or(0)));
  const ModelConfig& mc = im.config.model;
  if (a.has("act-quant") || a.has("act-quant-scope"))
    im.model->set_activation_quant(
        quant::parse_act_quant(a.get("act-quant").value_or("int8"), a.get("act-quant-scope").value_or("token")));
  const int64_t T = inference_context(im.config, a.get_int("seq-len").value_or(0));
  const std::optional<Tokenizer> tok = load_model_tokenizer(im.config, a.get("tokenizer").value_or(""));

  // Read and check every input before the first (slow) evaluation starts.
  std::vector<std::string> val_files;
  if (a.has("val")) {
    val_files = glob_files(*a.get("val"));
    if (val_files.empty()) usage_fail("--val {}: no file matches", *a.get("val"));
  }
  std::vector<EvalTask> tasks;
  TaskFileOptions topt;
  topt.vocab_size = mc.vocab_size;
  topt.bos_token_id = int32_t(mc.bos_token_id);
  topt.tokenizer = tok ? &*tok : nullptr;
  topt.limit = a.get_int("limit").value_or(0);
  for (const std::string& path : split_commas(a.get("tasks").value_or(""))) {
    tasks.push_back(load_task_file(path, topt));
    for (size_t i = 0; i + 1 < tasks.size(); ++i)
      if (tasks[i].name == tasks.back().name)
        usage_fail("--tasks: {} and {} both hold task \"{}\"", tasks[i].path, path, tasks.back().name);
  }
  if (a.has("passkey-lengths")) {
    if (!tok || !tok->is_byte_level())
      usage_fail("--passkey-lengths: native passkey prompts need the byte vocabulary; for a tokenizer.json "
                 "model write them with scripts/export_eval_tasks.py --passkey-lengths and pass --tasks");
    PasskeyOptions po;
    po.lengths = int_list("passkey-lengths", *a.get("passkey-lengths"));
    po.trials = a.get_int("passkey-trials").value_or(5);
    po.seed = uint64_t(a.get_int("passkey-seed").value_or(0));
    for (int64_t L : po.lengths)
      if (L > T)
        usage_fail("--passkey-lengths: {} tokens is beyond the context of {}; pass --seq-len={} to test beyond "
                   "the trained length", L, T, L);
    tasks.push_back(passkey_task(po, *tok, int32_t(mc.bos_token_id)));
  }

  EvalReport report;
  report.checkpoint = im.dir;
  report.step = im.step;
  report.attention = mc.attention;
  report.ssmax = mc.ssmax;
  report.attention_gate = mc.attention_gate;
  report.attention_label = attention_label(mc);
  report.params = derive(im.config).params_total;
  report.context = T;
  report.trained_context = im.config.training.seq_len;
  report.activations = quant::act_quant_label(im.model->activation_quant());
  if (im.quantization.is_object()) {
    const auto& q = im.quantization;
    report.quantization = {{"method", q["method"]}, {"bits", q.value("bits", nlohmann::json())},
                           {"group_size", q.value("group_size", nlohmann::json())}};
    report.weights = fmt::format("{} {} bits, {}", q["method"].get<std::string>(), q.value("bits", nlohmann::json()).dump(),
                                 q.value("group_size", nlohmann::json()) == "row" ? std::string("one scale per row")
                                     : "groups of " + q.value("group_size", nlohmann::json()).dump());
  }
  Decoder dec(*im.model, T);
  if (!val_files.empty()) {
    spdlog::info("validation loss over {} ({} files)", *a.get("val"), val_files.size());
    report.val = evaluate_val(dec, val_files, a.get_int("val-tokens").value_or(0), mc.bos_token_id,
                              parse_data_layout(im.config.data.layout), "--val " + *a.get("val"));
    report.val_files = val_files;
  }
  for (const EvalTask& task : tasks) {
    spdlog::info("task {}: {} {} examples from {}", task.name, task.size(), task_kind_name(task.kind), task.path);
    report.tasks.push_back(evaluate_task(dec, task, topt.tokenizer));
    if (task.name == "passkey") report.tasks.back().kind_label = "passkey";  // native or exported
  }
  std::cout << format_report(report) << std::flush;
  if (a.has("json")) write_json_file(*a.get("json"), to_json(report));
  return 0;
}

}  // namespace sp
