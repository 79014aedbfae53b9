// softpick sample CKPT [--prompt TEXT | --prompt-ids 1,2,3] [--max-tokens N] [--temperature T] [--top-k K]
//                      [--top-p P] [--seed S]
#include "analysis/npy.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/check.h"
#include "core/log.h"
#include "eval/load.h"
#include "model/decode.h"
#include "train/sample.h"

#include <charconv>
#include <cmath>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace sp {

namespace {

std::vector<int32_t> parse_ids(const std::string& text, int64_t V) {
  std::vector<int32_t> out;
  for (size_t start = 0; start <= text.size();) {
    const size_t end = std::min(text.find(',', start), text.size());
    int64_t v = 0;
    auto [p, ec] = std::from_chars(text.data() + start, text.data() + end, v);
    if (ec != std::errc() || p != text.data() + end)
      usage_fail("--prompt-ids={}: expected token ids separated by commas", text);
    if (v < 0 || v >= V) usage_fail("--prompt-ids: token {} is outside the vocabulary of {} ids", v, V);
    out.push_back(int32_t(v));
    start = end + 1;
  }
  return out;
}

}  // namespace

int cmd_sample(const Argv& argv) {
  const CommandSpec spec{
      "sample", "CKPT [--prompt TEXT | --prompt-ids IDS] [--max-tokens N] [--temperature T] [--top-k K] [--top-p P]",
      "Generate text from a checkpoint (or the newest valid checkpoint of a run directory) with a key/value "
      "cache. The context is the trained training.seq_len: when it is full, generation stops "
      "(or, with --slide, keeps the newest half and continues). The same seed gives the same text.",
      {{"prompt", "TEXT", "the prompt (byte vocabulary; BOS is put in front); default: BOS alone"},
       {"prompt-ids", "IDS", "the prompt as token ids, comma-separated, used as given (any vocabulary)"},
       {"max-tokens", "N", "tokens to generate (default 256)"},
       {"temperature", "T", "sampling temperature; 0 = greedy (default 0.8)"},
       {"top-k", "K", "sample among the K most likely tokens; 0 = all (default 40)"},
       {"top-p", "P", "then among the smallest set holding probability P (default 1 = all)"},
       {"seed", "S", "random seed (default 0)"},
       {"slide", "", "at a full context, keep the newest half of the tokens and continue"},
       {"ignore-eos", "", "do not stop at the end-of-document token"},
       {"seq-len", "T", "context in tokens (default: the checkpoint's training.seq_len)"},
       {"tokenizer", "SPEC", "\"byte\" or a tokenizer.json (default: the checkpoint's data.tokenizer)"},
       {"device", "DEVICE", "cpu or cuda (default: the checkpoint's training.device)"},
       {"threads", "N", "CPU threads (default: the checkpoint's training.threads, else all cores)"},
       {"json", "OUT", "also write the prompt, the generated ids and text as JSON"},
       {"logits", "OUT.npy", "also write the logits of every prompt position, (prompt tokens, V) float32, for "
                             "comparisons with other implementations"}},
      1, 1};
  const auto parsed = parse_command(spec, argv);
  if (!parsed) return 0;
  const ParsedArgs& a = *parsed;
  SampleOptions opt;
  opt.max_new_tokens = a.get_positive("max-tokens").value_or(256);
  opt.temperature = a.get_double("temperature").value_or(0.8);
  opt.top_k = a.get_int("top-k").value_or(40);
  opt.top_p = a.get_double("top-p").value_or(1.0);
  opt.seed = uint64_t(a.get_int("seed").value_or(0));
  opt.slide = a.has("slide");
  if (opt.temperature < 0) usage_fail("--temperature: must be >= 0");
  if (opt.top_k < 0) usage_fail("--top-k: must be >= 0");
  if (!(opt.top_p > 0 && opt.top_p <= 1)) usage_fail("--top-p: must be in (0, 1]");
  if (a.has("prompt") && a.has("prompt-ids")) usage_fail("give --prompt or --prompt-ids, not both");
  for (const char* f : {"threads", "seq-len"}) a.get_positive(f);

  InferenceModel im = load_inference_model(a.positional[0], a.get("device").value_or(""),
                                          int(a.get_int("threads").value_or(0)));
  const ModelConfig& mc = im.config.model;
  const int64_t T = inference_context(im.config, a.get_int("seq-len").value_or(0));
  const std::optional<Tokenizer> tok = load_model_tokenizer(im.config, a.get("tokenizer").value_or(""));
  if (!a.has("ignore-eos")) opt.stop_tokens = {int32_t(mc.eos_token_id)};

  std::vector<int32_t> prompt = {int32_t(mc.bos_token_id)};
  if (a.has("prompt-ids")) {
    prompt = parse_ids(*a.get("prompt-ids"), mc.vocab_size);
  } else if (a.has("prompt")) {
    if (!tok || !tok->is_byte_level())
      usage_fail("--prompt: text is encoded with the byte vocabulary only; this model uses {}: pass the "
                 "prompt's token ids with --prompt-ids", im.config.data.tokenizer);
    prompt = tok->encode_bytes(*a.get("prompt"));
    prompt[0] = int32_t(mc.bos_token_id);
  }
  if (int64_t(prompt.size()) > T)
    usage_fail("the prompt has {} tokens but the context holds {}; shorten it", prompt.size(), T);

  Decoder dec(*im.model, T);
  if (a.has("logits")) {
    std::vector<float> logits(prompt.size() * size_t(mc.vocab_size));  // (P, V)
    dec.append(prompt, logits);
    dec.reset();
    write_npy(*a.get("logits"), logits, {int64_t(prompt.size()), mc.vocab_size});
  }
  const auto t0 = std::chrono::steady_clock::now();
  const Generation g = generate(dec, prompt, opt);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string text = tok ? tok->decode(g.ids) : "";
  if (tok) std::cout << tok->decode(prompt) << text << "\n";
  else std::cout << "(no tokenizer to decode with; ids) " << nlohmann::json(g.ids).dump() << "\n";
  std::cout << std::flush;
  spdlog::info("{} tokens in {:.2f} s ({:.1f} tokens/s), stop: {}{}", g.ids.size(), secs,
               double(g.ids.size()) / std::max(secs, 1e-9), stop_reason_name(g.stop),
               g.slides ? fmt::format(", context slid {} times", g.slides) : "");
  if (a.has("json")) {
    nlohmann::ordered_json j;
    j["checkpoint"] = im.dir;
    j["step"] = im.step;
    j["prompt_ids"] = prompt;
    j["ids"] = g.ids;
    if (tok) j["text"] = text;
    j["stop"] = stop_reason_name(g.stop);
    j["slides"] = g.slides;
    j["options"] = {{"max_tokens", opt.max_new_tokens}, {"temperature", opt.temperature}, {"top_k", opt.top_k},
                    {"top_p", opt.top_p}, {"seed", opt.seed}, {"context", T}};
    std::ofstream out(*a.get("json"));
    out << j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";  // text may be cut mid-character
    if (!out) fail("--json {}: cannot write it", *a.get("json"));
  }
  return 0;
}

}  // namespace sp
