// The measurement (analyze_sequences) and the `softpick analyze` command around it (run_analysis).
// Metric definitions: src/analysis/metrics.h and docs/analysis.md.
#include "analysis/analyze.h"

#include "analysis/npy.h"
#include "checkpoint/checkpoint.h"
#include "config/config.h"
#include "core/check.h"
#include "core/log.h"
#include "cpu/attention.h"
#include "data/loader.h"

#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace sp {

namespace fs = std::filesystem;

namespace {

// Frees the activations however the measurement ends (a dump that cannot be written throws).
struct ScopedActivations {
  Model& model;
  Activations acts;
  ScopedActivations(Model& m, int64_t B, int64_t T) : model(m), acts(m.make_activations(B, T)) {}
  ~ScopedActivations() { model.free_activations(acts); }
};

std::string dump_path(const std::string& dir, int64_t l, int64_t h) {
  return (fs::path(dir) / ("attention_L" + std::to_string(l) + "_H" + std::to_string(h) + ".npy")).string();
}

}  // namespace

void attention_maps(Model& model, const Activations& acts, int64_t layer, std::vector<float>& probs,
                    std::vector<float>& out) {
  const ModelConfig& c = model.config();
  const int64_t B = acts.cur_B, T = acts.cur_T, H = c.num_heads, Hkv = *c.num_kv_heads, D = c.hidden_size / H;
  SP_ASSERT(layer >= 0 && layer < c.num_hidden_layers && B >= 1, "attention_maps: layer {} after forward ({}, {})",
            layer, B, T);
  const BlockActivations& x = acts.layers[size_t(layer)];
  const size_t nq = size_t(B) * size_t(T) * size_t(H * D), nk = size_t(B) * size_t(T) * size_t(Hkv * D);
  std::vector<float> q(nq), k(nk), v(nk);  // (B, T, H, D), (B, T, Hkv, D) x 2
  Backend& be = model.backend();
  // the maps of the model are those of what entered its attention: with SSMax, the scaled q
  be.download(q, (c.ssmax ? x.q_scaled : x.q).slice(0, nq));
  be.download(k, x.k.slice(0, nk));
  be.download(v, x.v.slice(0, nk));
  probs.assign(size_t(B) * size_t(H) * size_t(T) * size_t(T), 0.0f);  // (B, H, T, T)
  out.assign(nq, 0.0f);                                               // (B, T, H, D)
  const AttentionShape s{B, T, H, Hkv, D, normaliser_from_name(c.attention), c.softpick_eps};
  std::vector<float> sinks;  // (H) learned sink logits, for model.attention = sink
  if (const Buffer w = model.weights().layers[size_t(layer)].sinks) {
    sinks.resize(size_t(H));
    be.download(sinks, w);
  }
  attention_naive_forward(s, q.data(), k.data(), v.data(), sinks.empty() ? nullptr : sinks.data(), out.data(),
                          probs.data());
}

AnalysisReport analyze_sequences(Model& model, std::span<const int32_t> tokens, int64_t S, int64_t T,
                                 const AnalysisOptions& opt, std::span<const uint8_t> valid) {
  const ModelConfig& c = model.config();
  const int64_t L = c.num_hidden_layers, H = c.num_heads, C = c.hidden_size;
  SP_ASSERT(S >= 1 && T >= 1 && tokens.size() == size_t(S) * size_t(T), "{} tokens for ({}, {})", tokens.size(), S, T);
  SP_ASSERT(valid.empty() || valid.size() == tokens.size(), "mask of {} for ({}, {})", valid.size(), S, T);
  for (auto [l, h] : opt.dump) SP_ASSERT(l >= 0 && l < L && h >= 0 && h < H, "dump of head {}:{}", l, h);

  AnalysisReport r;
  r.sequences = S;
  r.seq_len = T;
  r.layers = L;
  r.heads = H;
  r.sink_eps = opt.sink_eps;
  r.near_zero = opt.near_zero;
  r.sink_cells.assign(size_t(L * H), 0);
  r.sink_count.assign(size_t(L * H), 0);
  r.sink_score_sum.assign(size_t(L * H), 0.0);
  r.hidden.assign(size_t(L + 1), Moments{});
  r.sparsity.assign(size_t(L), SparsityCounts{});
  if (c.attention_gate) r.gate.assign(size_t(L), Moments{});

  // One sequence per pass: the maps of one block, (1, H, T, T), are the largest buffer (H T^2 floats).
  ScopedActivations scoped(model, 1, T);
  Activations& acts = scoped.acts;
  const size_t TT = size_t(T) * size_t(T);
  std::vector<float> hidden(size_t(T) * size_t(C));            // (T, C) one hidden state
  std::vector<float> gate(r.gate.empty() ? 0 : size_t(T) * size_t(C));  // (T, H * D) one block's gate scores
  std::vector<float> probs, out;                               // (1, H, T, T), (1, T, H, D)
  std::vector<double> score(static_cast<size_t>(H));           // (H) sink score per head
  std::vector<SparsityCounts> counts(static_cast<size_t>(H));  // (H)
  for (int64_t s = 0; s < S; ++s) {
    spdlog::debug("analysing sequence {} of {}", s + 1, S);
    const auto seq_valid = valid.empty() ? valid : valid.subspan(size_t(s) * size_t(T), size_t(T));
    model.forward(acts, tokens.subspan(size_t(s) * size_t(T), size_t(T)), 1, T);
    for (int64_t l = 0; l <= L; ++l) {
      model.backend().download(hidden, acts.resid[size_t(l)].slice(0, hidden.size()));
      r.hidden[size_t(l)].merge(moments_of_rows(hidden, T, C, seq_valid));
    }
    for (size_t l = 0; l < r.gate.size(); ++l) {
      model.backend().download(gate, acts.layers[l].att_gate.slice(0, gate.size()));
      for (float& g : gate) g = 1.0f / (1.0f + std::exp(-g));
      r.gate[l].merge(moments_of_rows(gate, T, C, seq_valid));
    }
    for (int64_t l = 0; l < L; ++l) {
      attention_maps(model, acts, l, probs, out);
      // heads are independent and each costs O(T^2); results land in per-head slots, so the sums below
      // are taken in a fixed order whatever the thread count
#pragma omp parallel for if (TT * size_t(H) > 1000000)
      for (int64_t h = 0; h < H; ++h) {
        const std::span<const float> map(probs.data() + size_t(h) * TT, TT);  // (T, T) of head h
        score[size_t(h)] = sink_score(map, T, seq_valid);
        counts[size_t(h)] = sparsity_counts(map, T, opt.near_zero, seq_valid);
      }
      for (int64_t h = 0; h < H; ++h) {
        const size_t cell = size_t(l * H + h);
        r.sparsity[size_t(l)].merge(counts[size_t(h)]);
        if (std::isnan(score[size_t(h)])) continue;  // no real position in this sequence
        r.sink_cells[cell] += 1;
        r.sink_count[cell] += score[size_t(h)] > opt.sink_eps;
        r.sink_score_sum[cell] += score[size_t(h)];
      }
      if (s != 0) continue;
      for (auto [dl, dh] : opt.dump) {
        if (dl != l) continue;
        const std::string path = dump_path(opt.dump_dir, dl, dh);
        write_npy(path, std::span<const float>(probs.data() + size_t(dh) * TT, TT), {T, T});
        r.dumped.push_back(path);
      }
    }
  }
  return r;
}

std::vector<std::pair<int64_t, int64_t>> parse_head_list(const std::string& text, const std::string& flag) {
  std::vector<std::pair<int64_t, int64_t>> out;
  auto number = [&](std::string_view s, const std::string& item) {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size())
      usage_fail("--{} {}: '{}' is not LAYER:HEAD with two integers (e.g. 0:3,5:0)", flag, text, item);
    return v;
  };
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    const size_t colon = item.find(':');
    if (colon == std::string::npos)
      usage_fail("--{} {}: '{}' is not LAYER:HEAD with two integers (e.g. 0:3,5:0)", flag, text, item);
    out.emplace_back(number(std::string_view(item).substr(0, colon), item),
                     number(std::string_view(item).substr(colon + 1), item));
    start = end + 1;
  }
  return out;
}

namespace {

// The first `samples` windows of the shards in file order, as the data loader cuts them in the
// checkpoint's data layout without shuffling (T + 1 tokens each, of which the analysis uses the first T).
// May lower `samples`.
std::vector<int32_t> read_sequences(const std::vector<std::string>& files, const std::string& what, int64_t T,
                                    int64_t& samples, const ModelConfig& m, DataLayout layout) {
  LoaderOptions lo;
  lo.seq_len = T;
  lo.vocab_size = m.vocab_size;
  lo.bos_token_id = m.bos_token_id;
  lo.layout = layout;
  lo.seq_len_name = "--seq-len";
  lo.shuffle = false;
  const DataLoader data(files, lo, what);  // validates; an Error names the file, or says there is no window
  if (data.windows_per_epoch() < uint64_t(samples)) {
    spdlog::warn("{}: only {} windows of {} tokens; analysing {} sequences instead of {}", what,
                 data.windows_per_epoch(), T + 1, data.windows_per_epoch(), samples);
    samples = int64_t(data.windows_per_epoch());
  }
  return data.first_inputs(samples);  // (S, T)
}

// RUN_DIR/analysis/step_XXXXXXXX.json for a checkpoint inside a run directory, else "".
std::string default_json_path(const std::string& checkpoint_dir) {
  fs::path p = fs::path(checkpoint_dir).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();  // a trailing '/'
  if (p.parent_path().filename() != "checkpoints") return "";
  return (p.parent_path().parent_path() / "analysis" / (p.filename().string() + ".json")).string();
}

void write_json(const std::string& path, const nlohmann::ordered_json& j) {
  const fs::path p(path);
  std::error_code ec;
  if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
  if (ec) fail("{}: cannot create its directory ({})", path, ec.message());
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    out.flush();
    if (!out) fail("{}: cannot write it (directory missing or not writable, or disk full)", tmp);
  }
  fs::rename(tmp, path, ec);
  if (ec) fail("{}: cannot rename {} into place ({})", path, tmp, ec.message());
}

}  // namespace

nlohmann::ordered_json run_analysis(const AnalyzeRequest& req) {
  SP_ASSERT(req.samples >= 1 && req.seq_len >= 0, "analysis of {} samples of {} tokens", req.samples, req.seq_len);
  nlohmann::json state;
  const std::string dir = resolve_checkpoint(req.checkpoint, state);
  Config cfg = checkpoint_config(state, dir);
  if (!req.device.empty()) apply_override(cfg, "training.device=" + req.device);
  const ModelConfig& m = cfg.model;
  const int64_t T = req.seq_len > 0 ? req.seq_len : cfg.training.seq_len;

  const AnalysisOptions& opt = req.options;
  for (auto [l, h] : opt.dump)
    if (l < 0 || l >= m.num_hidden_layers || h < 0 || h >= m.num_heads)
      usage_fail("--dump-attention {}:{}: the model has layers 0..{} and heads 0..{}", l, h, m.num_hidden_layers - 1,
                 m.num_heads - 1);
  if (!opt.dump.empty() && opt.dump_dir.empty())
    usage_fail("--dump-attention needs --dump-dir DIR for the .npy files");

  const std::string pattern = req.data.empty() ? cfg.data.val_files : req.data;
  const std::string what = req.data.empty() ? "data.val_files of the checkpoint (" + pattern + "; pass --data)"
                                            : "--data " + pattern;
  const std::vector<std::string> files = glob_files(pattern);
  if (files.empty()) usage_fail("{}: no file matches", what);
  int64_t S = req.samples;
  if (!req.layout.empty()) apply_override(cfg, "data.layout=" + req.layout);
  const std::vector<int32_t> tokens = read_sequences(files, what, T, S, m, parse_data_layout(cfg.data.layout));

  auto backend = make_backend({cfg.training.device, req.threads});
  Model model(m, *backend);
  load_weights(dir, model);
  if (!opt.dump.empty()) {  // created only once everything else has been checked
    std::error_code ec;
    fs::create_directories(opt.dump_dir, ec);
    if (ec) fail("--dump-dir {}: cannot create it ({})", opt.dump_dir, ec.message());
  }
  spdlog::info("analysing {} ({}, {} layers x {} heads) on {} sequences of {} tokens", dir, attention_label(m),
               m.num_hidden_layers, m.num_heads, S, T);
  const AnalysisReport r = analyze_sequences(model, tokens, S, T, opt);

  nlohmann::ordered_json j;
  j["type"] = "analysis";
  j["checkpoint"] = dir;
  j["step"] = state.value("step", int64_t(0));
  j["attention"] = m.attention;
  j["ssmax"] = m.ssmax;
  j["attention_gate"] = m.attention_gate;
  j["data"] = files;
  j.update(to_json(r));
  std::cout << "analysis of " << dir << " (step " << j["step"].get<int64_t>() << "): " << attention_label(m)
            << ", " << S << " sequences of " << T << " tokens from " << pattern
            << "\n\n" << format_report(r);
  const std::string json_path = req.json_path.empty() ? default_json_path(dir) : req.json_path;
  if (json_path.empty()) {
    std::cout << "\n(no JSON written: the checkpoint is not inside a run directory; pass --json FILE)\n";
  } else {
    write_json(json_path, j);
    std::cout << "\nwrote " << json_path << "\n";
  }
  for (const auto& f : r.dumped) std::cout << "wrote " << f << "\n";
  return j;
}

}  // namespace sp
