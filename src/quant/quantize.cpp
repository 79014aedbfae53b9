#include "quant/quantize.h"

#include "checkpoint/checkpoint.h"
#include "checkpoint/safetensors.h"
#include "core/bf16.h"
#include "core/check.h"
#include "core/log.h"
#include "data/loader.h"
#include "model/model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <omp.h>
#include <optional>

namespace sp::quant {

namespace fs = std::filesystem;

namespace {

// The weights a method quantizes: every linear layer of the blocks, and with include_head the embedding
// and the LM head (the same tensor when tied).
bool is_target(const ParamSpec& s, bool include_head) {
  return s.role == ParamRole::Matmul || (include_head && (s.role == ParamRole::Embedding || s.role == ParamRole::LmHead));
}

int64_t group_of(const QuantizeOptions& opt, int64_t cols) { return opt.group > 0 ? opt.group : cols; }

struct Quantized {
  const ParamSpec* spec;
  QuantizedMatrix q;
  ReconstructionError err;
  std::optional<double> output_error, rtn_output_error;  // GPTQ: on its calibration inputs
};

QuantizedMatrix quantize_one(const QuantizeOptions& opt, std::span<const float> w, int64_t rows, int64_t cols) {
  const int64_t g = group_of(opt, cols);
  switch (opt.method) {
    case Method::Rtn: return quantize_rtn(w, rows, cols, opt.bits, g);
    case Method::Hqq: return quantize_hqq(w, rows, cols, opt.bits, g, opt.hqq);
    case Method::Nf4: return quantize_codebook(w, rows, cols, Codebook::Nf4, g);
    case Method::Fp4: return quantize_codebook(w, rows, cols, Codebook::Fp4, g);
    case Method::Int8: return quantize_int8(w, rows, cols);
    case Method::Gptq: break;
  }
  SP_ASSERT(false, "quantize_one: GPTQ needs its calibration statistics");
  return {};
}

std::span<float> tensor_of(std::vector<float>& flat, const ParamSpec& s) {
  return std::span<float>(flat).subspan(s.offset, s.numel);
}

// ---- GPTQ: layer by layer on calibration data, each group of projections on the inputs that the
// already quantized part of the model produces ----

struct ProjectionGroup {
  std::vector<std::string> names;  // tensors reading the same input, under "model.layers.l."
  Buffer BlockActivations::*input;  // that input, as block_forward leaves it
  int64_t width;
};

std::vector<int32_t> calibration_tokens(const Config& cfg, const QuantizeOptions& opt, int64_t T, int64_t& n,
                                        nlohmann::ordered_json& record) {
  const std::string pattern = opt.calibration.empty() ? cfg.data.val_files : opt.calibration;
  const std::string what = opt.calibration.empty() ? "data.val_files " + pattern + " (the checkpoint's)" : "--calibration " + pattern;
  const std::vector<std::string> files = glob_files(pattern);
  if (files.empty())
    usage_fail("{}: no file matches; pass --calibration SHARDS (token shards, e.g. the validation shards)", what);
  LoaderOptions lo;
  lo.batch_size = 1;
  lo.seq_len = T;
  lo.vocab_size = cfg.model.vocab_size;
  lo.bos_token_id = cfg.model.bos_token_id;
  lo.layout = parse_data_layout(cfg.data.layout);
  lo.seq_len_name = "--calibration-len";
  lo.shuffle = false;
  DataLoader loader(files, lo, what);
  const int64_t windows = int64_t(loader.windows_per_epoch());
  if (windows == 0) usage_fail("{}: no window of {} tokens; pass more data or a shorter --calibration-len", what, T + 1);
  n = std::min(opt.calibration_sequences, windows);
  if (n < opt.calibration_sequences)
    spdlog::warn("{}: {} windows of {} tokens, fewer than the {} calibration sequences asked for", what, windows, T,
                 opt.calibration_sequences);
  std::vector<int32_t> tokens(size_t(n * T)), window(size_t(T + 1));
  for (int64_t i = 0; i < n; ++i) {
    loader.next(window);
    std::copy(window.begin(), window.begin() + T, tokens.begin() + i * T);
  }
  record = {{"files", files}, {"sequences", n}, {"seq_len", T}, {"tokens", n * T}};
  return tokens;
}

std::vector<Quantized> quantize_gptq_model(const Config& cfg, const std::vector<ParamSpec>& specs,
                                           std::vector<float>& flat, const QuantizeOptions& opt,
                                           nlohmann::ordered_json& calib_record) {
  const ModelDims d(cfg.model);
  const int64_t T = opt.calibration_len > 0 ? opt.calibration_len : std::min<int64_t>(2048, cfg.training.seq_len);
  int64_t n = 0;
  const std::vector<int32_t> tokens = calibration_tokens(cfg, opt, T, n, calib_record);
  BackendOptions bo;
  bo.device = opt.device.empty() ? cfg.training.device : opt.device;
  bo.threads = opt.threads > 0 ? opt.threads : int(cfg.training.threads.value_or(0));
  const std::unique_ptr<Backend> be = make_backend(bo);
  Model model(cfg.model, *be);
  be->upload(model.params(), std::span<const float>(flat).first(model.params().numel));
  const int64_t Bc = std::min(opt.calibration_batch, n), batches = (n + Bc - 1) / Bc;
  Activations a = model.make_activations(Bc, T);
  calib_record["device"] = be->name();
  spdlog::info("GPTQ: {} calibration sequences of {} tokens on {}, {} per pass", n, T, be->name(), Bc);

  // The residual stream entering the current block, one host array per batch of sequences.
  const auto rows_of = [&](int64_t b) { return std::min(Bc, n - b * Bc); };
  std::vector<std::vector<float>> hidden(static_cast<size_t>(batches));
  for (int64_t b = 0; b < batches; ++b) {
    const size_t N = size_t(rows_of(b) * T);
    be->upload(a.tokens.slice(0, N), std::span<const int32_t>(tokens).subspan(size_t(b * Bc * T), N));
    be->embedding_forward(a.resid[0], a.tokens, model.weights().embed, N, size_t(d.C));
    hidden[size_t(b)].resize(N * size_t(d.C));
    be->download(hidden[size_t(b)], a.resid[0].slice(0, N * size_t(d.C)));
  }
  const auto run_block = [&](int64_t l, int64_t b) {
    const size_t N = size_t(rows_of(b) * T);
    be->upload(a.resid[0].slice(0, N * size_t(d.C)), std::span<const float>(hidden[size_t(b)]));
    model.block_forward(l, a.layers[0], a.resid[0], a.resid[1], model.attention_shape(rows_of(b), T));
    return N;
  };

  std::map<std::string, const ParamSpec*> by_name;
  for (const auto& s : specs) by_name[s.name] = &s;
  GptqOptions g = opt.gptq;
  g.bits = opt.bits;
  std::vector<Quantized> out;
  std::vector<float> x;
  // GPTQ's "true sequential" order of a Llama block: each group on the inputs of the groups before it.
  std::vector<ProjectionGroup> groups = {
      {{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}, &BlockActivations::ln1, d.C},
      {{"self_attn.o_proj"}, cfg.model.attention_gate ? &BlockActivations::att_out : &BlockActivations::att, d.H * d.D},
      {{"mlp.gate_proj", "mlp.up_proj"}, &BlockActivations::ln2, d.C},
      {{"mlp.down_proj"}, &BlockActivations::act, d.F}};
  if (cfg.model.attention_gate) groups[0].names.push_back("self_attn.gate_proj");
  for (int64_t l = 0; l < d.L; ++l) {
    const auto t0 = std::chrono::steady_clock::now();
    for (const ProjectionGroup& pg : groups) {
      InputStatistics st(pg.width);
      for (int64_t b = 0; b < batches; ++b) {
        const size_t N = run_block(l, b);
        x.resize(N * size_t(pg.width));
        be->download(x, (a.layers[0].*pg.input).slice(0, x.size()));
        st.add(x, int64_t(N));
      }
      const std::vector<double> H = st.hessian();
      for (const std::string& short_name : pg.names) {
        const ParamSpec& s = *by_name.at("model.layers." + std::to_string(l) + "." + short_name + ".weight");
        const std::span<float> w = tensor_of(flat, s);
        const std::vector<float> orig(w.begin(), w.end());
        Quantized r{&s, quantize_gptq(orig, s.shape[0], s.shape[1], H, g), {}, {}, {}};
        const std::vector<float> deq = r.q.dequantize();
        r.err = reconstruction_error(orig, r.q);
        r.output_error = st.output_error(orig, deq, s.shape[0]);
        r.rtn_output_error = st.output_error(orig, quantize_rtn(orig, s.shape[0], s.shape[1], g.bits, g.group).dequantize(), s.shape[0]);
        std::copy(deq.begin(), deq.end(), w.begin());
        be->upload(model.tensor(model.params(), s.name), std::span<const float>(deq));
        out.push_back(std::move(r));
      }
    }
    for (int64_t b = 0; b < batches; ++b) {  // the quantized block's outputs: the next block's inputs
      const size_t N = run_block(l, b);
      be->download(hidden[size_t(b)], a.resid[1].slice(0, N * size_t(d.C)));
    }
    spdlog::info("GPTQ: block {}/{} quantized ({:.1f} s)", l + 1, d.L,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  model.free_activations(a);
  return out;
}

// The packed form of every quantized tensor: "<name>.qweight" (rows, ceil(cols * bits / 8)) U8 codes,
// "<name>.scale" (rows, groups) and, for rtn, hqq and gptq, "<name>.zero" (rows, groups): fp16 for rtn and
// gptq, fp32 otherwise (int8's zero is 128; the code books have none).
std::vector<RawTensor> packed_tensors(const std::vector<Quantized>& qs, Method method) {
  const bool fp16_meta = method == Method::Rtn || method == Method::Gptq;
  std::vector<RawTensor> out;
  const auto meta = [&](const std::string& name, const std::vector<float>& v, int64_t rows, int64_t groups) {
    RawTensor t{name, fp16_meta ? TensorDtype::F16 : TensorDtype::F32, {rows, groups}, {}};
    t.bytes.resize(v.size() * dtype_bytes(t.dtype));
    for (size_t i = 0; i < v.size(); ++i) {
      if (fp16_meta) {
        const uint16_t h = float_to_fp16(v[i]);  // exact: the quantizers keep these at fp16
        std::memcpy(&t.bytes[2 * i], &h, 2);
      } else {
        std::memcpy(&t.bytes[4 * i], &v[i], 4);
      }
    }
    out.push_back(std::move(t));
  };
  for (const Quantized& r : qs) {
    const std::string base = r.spec->name.substr(0, r.spec->name.size() - std::string(".weight").size());
    const QuantizedMatrix& q = r.q;
    out.push_back({base + ".qweight", TensorDtype::U8, {q.rows, (q.cols * q.bits + 7) / 8}, pack_codes(q)});
    meta(base + ".scale", q.scale, q.rows, q.groups_per_row());
    if (!q.zero.empty() && method != Method::Int8) meta(base + ".zero", q.zero, q.rows, q.groups_per_row());
  }
  return out;
}

}  // namespace

QuantizeOptions resolve_options(QuantizeOptions opt) {
  const MethodInfo& info = method_info(opt.method);
  if (opt.bits == 0) opt.bits = info.min_bits == info.max_bits ? info.min_bits : 4;
  if (opt.bits < info.min_bits || opt.bits > info.max_bits) {
    if (info.min_bits == info.max_bits)
      usage_fail("--bits {}: {} quantizes to {} bits only", opt.bits, info.name, info.min_bits);
    usage_fail("--bits {}: {} quantizes to {} to {} bits", opt.bits, info.name, info.min_bits, info.max_bits);
  }
  if (opt.method == Method::Int8 && opt.group != 0)
    usage_fail("--group-size {}: int8 has one scale per row (vector-wise); leave --group-size out", opt.group);
  if (opt.group == 0) opt.group = info.default_group;
  if (opt.group < 0) usage_fail("--group-size {}: must be positive", opt.group);
  const bool gptq = opt.method == Method::Gptq;
  if (!gptq && !opt.calibration.empty())
    usage_fail("--calibration: only gptq uses calibration data; {} quantizes the weights alone", info.name);
  if (!(opt.gptq.damp > 0 && opt.gptq.damp <= 1)) usage_fail("--damp {}: must be in (0, 1]", opt.gptq.damp);
  if (opt.gptq.block <= 0) usage_fail("--block-size {}: must be positive", opt.gptq.block);
  if (opt.calibration_sequences <= 0 || opt.calibration_batch <= 0 || opt.calibration_len < 0)
    usage_fail("--calibration-sequences, --calibration-len and --calibration-batch must be positive");
  opt.gptq.bits = opt.bits;
  opt.gptq.group = opt.group;
  return opt;
}

std::string default_output_dir(const std::string& checkpoint_dir, const QuantizeOptions& opt) {
  // .../RUN/checkpoints/step_N -> .../RUN-<method><bits>
  fs::path run = fs::path(checkpoint_dir).lexically_normal();
  if (run.filename().empty()) run = run.parent_path();
  run = run.parent_path().parent_path();
  return run.string() + "-" + method_info(opt.method).name + std::to_string(opt.bits);
}

std::string quantize_checkpoint(const std::string& path, const std::string& out_dir, const QuantizeOptions& given) {
  const QuantizeOptions opt = resolve_options(given);
  const MethodInfo& info = method_info(opt.method);
  nlohmann::json state;
  const std::string dir = resolve_checkpoint(path, state);
  const Config cfg = checkpoint_config(state, dir);
  const int threads = opt.threads > 0 ? opt.threads : int(cfg.training.threads.value_or(0));
  if (threads > 0) omp_set_num_threads(threads);  // the quantizers' loops (GPTQ's backend sets its own too)
  const std::vector<ParamSpec> specs = param_specs(cfg.model);
  CheckpointTensors t;
  load_checkpoint(dir, specs, flat_size(specs), t, false);
  TrainState ts;  // the source's step and tokens, for the record; the rest is for resuming, which this is not
  ts.step = state.value("step", int64_t(0));
  ts.tokens_seen = state.value("tokens_seen", int64_t(0));

  std::vector<const ParamSpec*> targets;
  for (const auto& s : specs)
    if (is_target(s, opt.include_head)) targets.push_back(&s);
  for (const ParamSpec* s : targets) {
    const int64_t cols = s->shape[1];
    if (cols % group_of(opt, cols) != 0) {
      std::string widths;
      for (const ParamSpec* o : targets)
        if (widths.find(std::to_string(o->shape[1])) == std::string::npos)
          widths += (widths.empty() ? "" : ", ") + std::to_string(o->shape[1]);
      usage_fail("--group-size {}: does not divide the input width {} of {}; choose a divisor of every input width "
                 "({})", opt.group, cols, s->name, widths);
    }
    for (float v : tensor_of(t.params, *s))
      if (!std::isfinite(v)) fail("{}: {} holds a non-finite value; quantize a checkpoint with finite weights", dir, s->name);
  }
  const fs::path out = fs::path(out_dir).lexically_normal();
  if (fs::weakly_canonical(out) == fs::weakly_canonical(fs::path(dir).parent_path().parent_path()))
    usage_fail("--out {}: is the source run directory; write the quantized checkpoint elsewhere", out_dir);
  if (!list_checkpoints(out.string()).empty() && !opt.overwrite)
    usage_fail("--out {}: already holds checkpoints; pass --overwrite to replace them or choose another directory",
               out_dir);

  spdlog::info("quantizing {} ({} tensors) with {} at {} bits{}", dir, targets.size(), info.name, opt.bits,
               opt.method == Method::Int8 ? ", one scale per row" : ", groups of " + std::to_string(opt.group));
  std::vector<Quantized> qs;
  nlohmann::ordered_json calib = nullptr;
  if (opt.method == Method::Gptq) {
    if (opt.include_head)
      usage_fail("--include-head: gptq quantizes the blocks' linear layers only; quantize the head with rtn or hqq");
    qs = quantize_gptq_model(cfg, specs, t.params, opt, calib);
  } else {
    for (const ParamSpec* s : targets) {
      const std::span<float> w = tensor_of(t.params, *s);
      Quantized r{s, quantize_one(opt, w, s->shape[0], s->shape[1]), {}, {}, {}};
      r.err = reconstruction_error(w, r.q);
      const std::vector<float> deq = r.q.dequantize();
      std::copy(deq.begin(), deq.end(), w.begin());
      qs.push_back(std::move(r));
    }
  }

  // quantization.json
  // rtn and gptq store scale and (integer) zero in fp16; hqq its fractional zero and scale in fp32
  const bool fp16_meta = opt.method == Method::Rtn || opt.method == Method::Gptq;
  int64_t quantized_params = 0, meta_bits = 0;
  double rel_sum = 0;
  nlohmann::ordered_json layers = nlohmann::ordered_json::array();
  for (const Quantized& r : qs) {
    nlohmann::ordered_json j = {{"name", r.spec->name}, {"shape", r.spec->shape}, {"mse", r.err.mse},
                                {"relative_error", r.err.relative}};
    if (r.output_error) j["output_error"] = *r.output_error;
    if (r.rtn_output_error) j["rtn_output_error"] = *r.rtn_output_error;
    layers.push_back(j);
    quantized_params += int64_t(r.q.codes.size());
    // scale and zero per group (fp16, or hqq's fp32); an fp32 absmax per block; int8's fp32 row scale (zero 128)
    meta_bits += int64_t(r.q.scale.size() + (opt.method == Method::Int8 ? 0 : r.q.zero.size())) * (fp16_meta ? 16 : 32);
    rel_sum += r.err.relative;
  }
  int64_t total = 0;
  for (const auto& s : specs) total += int64_t(s.numel);
  const int64_t code_bits = quantized_params * opt.bits;
  nlohmann::ordered_json j;
  j["format_version"] = 1;
  j["method"] = info.name;
  j["description"] = info.summary;
  j["bits"] = opt.bits;
  j["group_size"] = opt.method == Method::Int8 ? nlohmann::ordered_json("row") : nlohmann::ordered_json(opt.group);
  j["source"] = {{"checkpoint", fs::absolute(dir).lexically_normal().string()}, {"step", ts.step}};
  j["include_head"] = opt.include_head;
  if (opt.method == Method::Hqq)
    j["hqq"] = {{"lp_norm", opt.hqq.lp_norm}, {"beta", opt.hqq.beta}, {"kappa", opt.hqq.kappa}, {"iters", opt.hqq.iters}};
  if (opt.method == Method::Gptq)
    j["gptq"] = {{"damp", opt.gptq.damp}, {"block_size", opt.gptq.block}, {"act_order", opt.gptq.act_order},
                 {"true_sequential", true}};
  if (opt.method == Method::Nf4 || opt.method == Method::Fp4) {
    const auto book = codebook_values(opt.method == Method::Nf4 ? Codebook::Nf4 : Codebook::Fp4);
    j["codebook"] = std::vector<float>(book.begin(), book.end());
  }
  j["calibration"] = calib;
  j["activations"] = opt.method == Method::Int8
                         ? nlohmann::ordered_json{{"method", "llm_int8"}, {"threshold", 6.0}}
                         : nlohmann::ordered_json(nullptr);
  j["summary"] = {{"quantized_tensors", qs.size()},
                  {"quantized_params", quantized_params},
                  {"total_params", total},
                  {"bits_per_weight", double(code_bits + meta_bits) / double(std::max<int64_t>(quantized_params, 1))},
                  {"mean_relative_error", qs.empty() ? 0.0 : rel_sum / double(qs.size())},
                  {"quantized_bytes", (code_bits + meta_bits + 7) / 8},
                  {"bf16_bytes", 2 * quantized_params}};
  j["packed"] = opt.packed ? nlohmann::ordered_json(kPackedFile) : nlohmann::ordered_json(nullptr);
  j["layers"] = layers;

  std::vector<CheckpointExtra> extra;
  extra.push_back({kQuantizationFile, [&](const std::string& p) { write_text_file(p, j.dump(2) + "\n"); }});
  if (opt.packed)
    extra.push_back({kPackedFile, [&](const std::string& p) {
                       write_safetensors(p, packed_tensors(qs, opt.method),
                                         {{"format", "softpick-quantized"},
                                          {"method", info.name},
                                          {"bits", std::to_string(opt.bits)},
                                          {"layout", "qweight: codes of `bits` bits, LSB first, each row starting on "
                                                     "a byte; groups of consecutive columns; value = (code - zero) * "
                                                     "scale, or codebook[code] * scale (quantization.json)"}});
                     }});
  Config out_cfg = cfg;
  out_cfg.training.run_dir = out.string();
  TrainState s;
  s.step = ts.step;
  s.tokens_seen = ts.tokens_seen;
  const std::string written = save_checkpoint(out.string(), specs, {t.params, {}, {}}, s, out_cfg, extra);
  if (opt.overwrite)  // the new checkpoint is in place: the earlier ones of OUT_DIR go
    for (const auto& c : list_checkpoints(out.string()))
      if (fs::path(c.dir) != fs::path(written)) fs::remove_all(c.dir);
  spdlog::info("{} at {} bits: {} tensors, {:.2f} bits per weight, mean relative error {:.4f} -> {}", info.name,
               opt.bits, qs.size(), j["summary"]["bits_per_weight"].get<double>(),
               j["summary"]["mean_relative_error"].get<double>(), written);
  return written;
}

nlohmann::json quantization_record(const std::string& checkpoint_dir) {
  const fs::path p = fs::path(checkpoint_dir) / kQuantizationFile;
  if (!fs::exists(p)) return nullptr;
  nlohmann::json j;
  try {
    std::ifstream in(p);
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({}); the quantized checkpoint is damaged", p.string(), e.what());
  }
  const auto& act = j.is_object() ? j.value("activations", nlohmann::json()) : nlohmann::json();
  if (!j.is_object() || !j.contains("activations") || !(act.is_null() || act.is_object()) || !j.value("method", nlohmann::json()).is_string())
    fail("{}: no \"method\" or \"activations\" entry of the right type; the quantized checkpoint is damaged or from "
         "another program", p.string());
  if (act.is_object() && (act.value("method", "") != "llm_int8" || !act.value("threshold", nlohmann::json()).is_number()))
    fail("{}: activations {} is not {{\"method\": \"llm_int8\", \"threshold\": number}}; the quantized checkpoint is "
         "damaged", p.string(), act.dump());
  return j;
}

ActQuantArgs recorded_act_quant(const nlohmann::json& record) {
  ActQuantArgs a;
  if (record.is_object() && record["activations"].is_object()) {
    a.kind = ActQuant::Int8;
    a.outlier_threshold = record["activations"]["threshold"].get<double>();
  }
  return a;
}

ActQuantArgs parse_act_quant(const std::string& kind, const std::string& scope) {
  ActQuantArgs a;
  if (kind == "int8") a.kind = ActQuant::Int8;
  else if (kind == "fp8") a.kind = ActQuant::Fp8;
  else if (kind != "none") usage_fail("--act-quant {}: expected none, int8 or fp8", kind);
  if (scope == "tensor") a.per_tensor = true;
  else if (scope != "token") usage_fail("--act-quant-scope {}: expected token or tensor", scope);
  return a;
}

std::string act_quant_label(const ActQuantArgs& a) {
  if (a.kind == ActQuant::None) return "none";
  if (a.outlier_threshold > 0) return fmt::format("llm.int8 (int8 per token, 16-bit columns with |x| >= {:g})", a.outlier_threshold);
  return fmt::format("{} per {}", a.kind == ActQuant::Int8 ? "int8" : "fp8 e4m3", a.per_tensor ? "tensor" : "token");
}

}  // namespace sp::quant
