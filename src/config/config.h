// Run configuration: plain structs with the paper's recipe as defaults (docs/configs.md), one visitor that
// lists every key once, and the functions that load, override, validate and print it.
//
// Every key lives in exactly one place: visit_fields() below. Loading, command-line overrides, type and
// range checks, "did you mean" suggestions, JSON output and the key reference in docs/configs.md are all
// loops over that list.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace sp {

struct ModelConfig {
  std::string attention = "softpick";  // softmax | softpick | rectified | softmax1 | sink
  bool ssmax = false;                  // scaled attention (SSMax): q *= s_h * log(pos + 2)
  double ssmax_init = 0.3;             // initial per-head s_h
  bool attention_gate = false;         // output gate: attention output *= sigmoid(rmsnorm(x) W_g^T)
  double softpick_eps = 1e-6;          // added to the softpick denominator after the max shift
  int64_t hidden_size = 1024;          // C
  int64_t num_hidden_layers = 24;      // L
  int64_t num_heads = 16;              // H
  std::optional<int64_t> num_kv_heads;       // Hkv; null: = num_heads (no grouped-query attention)
  std::optional<int64_t> intermediate_size;  // F; null: SwiGLU rule, int(C * 8/3) rounded up to 256
  int64_t vocab_size = 32000;          // V
  double rope_theta = 10000.0;
  double norm_eps = 1e-6;
  double initializer_range = 0.006;    // std of the N(0, std) init of every Linear and Embedding
  bool tie_word_embeddings = false;
  int64_t bos_token_id = 1;
  int64_t eos_token_id = 2;
};

struct OptimizerConfig {
  std::string name = "adamw";
  double lr = 3e-4;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-15;
  double weight_decay = 0.1;
  bool decay_norms_and_embeddings = true;  // the paper decays every parameter
};

struct LrSchedulerConfig {
  std::string name = "cosine";  // cosine | wsd | constant
  int64_t warmup_steps = 1000;
  double lr_min = 0.1;          // final lr as a fraction of optimizer.lr
  double decay_ratio = 0.1;     // wsd: fraction of the steps spent decaying
};

struct TrainingConfig {
  int64_t batch_size = 16;      // B, sequences per micro-batch per rank
  int64_t seq_len = 4096;       // T
  int64_t gradient_accumulation_steps = 1;
  int64_t steps = 100000;
  double max_norm = 1.0;        // gradient-norm clip
  int64_t seed = 79;
  int64_t max_skipped_steps = 10;  // abort after this many non-finite steps in a row
  std::string device = "cpu";      // cpu | cuda: the backend (make_backend)
  std::optional<int64_t> threads;  // CPU threads; null: all cores
  std::string activation_checkpointing = "none";  // none | attention | full: what backward recomputes
  std::string attention_backward = "deterministic";  // deterministic | atomic (dq by fp32 atomics on GPUs)
  std::string run_dir = "runs/default";
};

struct DataConfig {
  std::string train_files = "data/fineweb-edu/fineweb-edu_train_*.bin";  // glob pattern of token shards
  std::string val_files = "data/fineweb-edu/fineweb-edu_val_*.bin";
  std::string tokenizer = "byte";  // "byte", or the path of a Hugging Face tokenizer.json
  std::string layout = "stream";   // how shards are cut into windows: stream | document | bos (data/windows.h)
};

struct CheckpointConfig {
  int64_t interval = 1000;
  int64_t keep_latest_k = 2;
  std::optional<int64_t> keep_every;  // also keep every N-th step for good; null: none
  std::string resume = "auto";        // auto | never | path of a checkpoint directory
};

struct LoggingConfig {
  std::string level = "info";
  int64_t log_interval = 1;
  int64_t eval_interval = 1000;
  int64_t eval_tokens = 1048576;     // validation tokens per evaluation
  int64_t sample_interval = 5000;
  int64_t sample_tokens = 128;
  std::optional<int64_t> analysis_interval;  // sink rate, kurtosis, sparsity every N steps; null: never
  int64_t analysis_samples = 4;              // validation sequences the periodic analysis measures
};

struct DistributedConfig {
  std::string backend = "auto";  // auto | mpi | nccl
  int64_t zero_stage = 1;        // 0: replicated optimizer state, 1: sharded (ZeRO-1)
  std::string reduce_dtype = "fp32";  // fp32 | bf16: the dtype the gradients travel and are summed in
};

struct Config {
  ModelConfig model;
  OptimizerConfig optimizer;
  LrSchedulerConfig lr_scheduler;
  TrainingConfig training;
  DataConfig data;
  CheckpointConfig checkpoint;
  LoggingConfig logging;
  DistributedConfig distributed;

  std::string source;  // where it came from, for messages: "configs/x.json", "defaults"
};

// What a key may hold, beyond its type.
struct FieldSpec {
  const char* section;
  const char* key;
  const char* doc;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices = {};  // for strings: allowed values; empty = any
  bool open_choices = false;              // choices are examples, other values (paths) allowed too
};

constexpr double kInf = std::numeric_limits<double>::infinity();

// Calls v(spec, field) for every key, in the order they are printed. C is Config or const Config.
template <class C, class V>
void visit_fields(C& c, V&& v) {
  auto& m = c.model;
  v(FieldSpec{"model", "attention", "attention normaliser: the paper's softmax, softpick, rectified; softmax1 (exp(x_i) / (1 + sum_j exp(x_j))); sink (a learned per-head logit in the denominator); docs/attention.md", -kInf, kInf, {"softmax", "softpick", "rectified", "softmax1", "sink"}}, m.attention);
  v(FieldSpec{"model", "ssmax", "scaled attention (SSMax): multiply q at position i by s_h * log(i + 2)"}, m.ssmax);
  v(FieldSpec{"model", "ssmax_init", "initial value of the learnable per-head SSMax scale s_h", 0, kInf}, m.ssmax_init);
  v(FieldSpec{"model", "attention_gate", "attention output gate (any normaliser): multiply each head's output elementwise by sigmoid(h W_g^T), h the block's normalised input"}, m.attention_gate);
  v(FieldSpec{"model", "softpick_eps", "epsilon added to the softpick denominator (after the max shift)", 0, 1}, m.softpick_eps);
  v(FieldSpec{"model", "hidden_size", "model width C", 1, 1 << 20}, m.hidden_size);
  v(FieldSpec{"model", "num_hidden_layers", "number of transformer blocks L", 1, 4096}, m.num_hidden_layers);
  v(FieldSpec{"model", "num_heads", "attention query heads H", 1, 4096}, m.num_heads);
  v(FieldSpec{"model", "num_kv_heads", "key/value heads Hkv (grouped-query attention); null = num_heads", 1, 4096}, m.num_kv_heads);
  v(FieldSpec{"model", "intermediate_size", "SwiGLU width F; null = int(C * 8/3) rounded up to a multiple of 256", 1, 1 << 22}, m.intermediate_size);
  v(FieldSpec{"model", "vocab_size", "vocabulary size V", 2, 1 << 30}, m.vocab_size);
  v(FieldSpec{"model", "rope_theta", "RoPE base", 1, kInf}, m.rope_theta);
  v(FieldSpec{"model", "norm_eps", "RMSNorm epsilon", 0, 1}, m.norm_eps);
  v(FieldSpec{"model", "initializer_range", "std of the normal init of every Linear and Embedding weight", 0, 10}, m.initializer_range);
  v(FieldSpec{"model", "tie_word_embeddings", "share the embedding matrix with the LM head"}, m.tie_word_embeddings);
  v(FieldSpec{"model", "bos_token_id", "beginning-of-document token (starts every document in a shard)", 0, kInf}, m.bos_token_id);
  v(FieldSpec{"model", "eos_token_id", "end-of-document token", 0, kInf}, m.eos_token_id);

  auto& o = c.optimizer;
  v(FieldSpec{"optimizer", "name", "optimizer", -kInf, kInf, {"adamw"}}, o.name);
  v(FieldSpec{"optimizer", "lr", "peak learning rate", 0, 10}, o.lr);
  v(FieldSpec{"optimizer", "beta1", "AdamW beta1", 0, 1}, o.beta1);
  v(FieldSpec{"optimizer", "beta2", "AdamW beta2", 0, 1}, o.beta2);
  v(FieldSpec{"optimizer", "eps", "AdamW epsilon", 0, 1}, o.eps);
  v(FieldSpec{"optimizer", "weight_decay", "decoupled weight decay", 0, 10}, o.weight_decay);
  v(FieldSpec{"optimizer", "decay_norms_and_embeddings", "apply weight decay to norm weights, embeddings and SSMax scales too (the paper does)"}, o.decay_norms_and_embeddings);

  auto& s = c.lr_scheduler;
  v(FieldSpec{"lr_scheduler", "name", "schedule after warmup", -kInf, kInf, {"cosine", "wsd", "constant"}}, s.name);
  v(FieldSpec{"lr_scheduler", "warmup_steps", "linear warmup steps from 0 to lr", 0, kInf}, s.warmup_steps);
  v(FieldSpec{"lr_scheduler", "lr_min", "final learning rate as a fraction of optimizer.lr", 0, 1}, s.lr_min);
  v(FieldSpec{"lr_scheduler", "decay_ratio", "wsd only: fraction of training.steps spent in the final decay", 0, 1}, s.decay_ratio);

  auto& t = c.training;
  v(FieldSpec{"training", "batch_size", "sequences per micro-batch on each rank (B)", 1, 1 << 20}, t.batch_size);
  v(FieldSpec{"training", "seq_len", "tokens per sequence (T)", 1, 1 << 24}, t.seq_len);
  v(FieldSpec{"training", "gradient_accumulation_steps", "micro-batches per optimizer step", 1, 1 << 20}, t.gradient_accumulation_steps);
  v(FieldSpec{"training", "steps", "optimizer steps in the whole run", 1, kInf}, t.steps);
  v(FieldSpec{"training", "max_norm", "clip the global gradient norm to this (0 = no clipping)", 0, kInf}, t.max_norm);
  v(FieldSpec{"training", "seed", "seed of the init, the data order and every other random choice", 0, kInf}, t.seed);
  v(FieldSpec{"training", "max_skipped_steps", "abort after this many consecutive steps with a non-finite loss or gradient", 1, kInf}, t.max_skipped_steps);
  v(FieldSpec{"training", "device", "where the model runs: cpu (the fp32 reference backend) or cuda (needs a build with the CUDA backend; the k-th rank of a node uses its GPU k)", -kInf, kInf, {"cpu", "cuda"}}, t.device);
  v(FieldSpec{"training", "threads", "CPU threads for OpenMP and BLAS; null = all cores", 1, 4096}, t.threads);
  v(FieldSpec{"training", "activation_checkpointing", "what the backward pass recomputes instead of keeping: none, attention (each block's attention half: one more QKV projection and attention forward per layer) or full (the whole block: about one more forward pass); gradients are identical, `softpick config` shows the memory of each", -kInf, kInf, {"none", "attention", "full"}}, t.activation_checkpointing);
  v(FieldSpec{"training", "attention_backward", "the GPU attention backward: deterministic (two kernels that each own their outputs; reruns give the same bits) or atomic (one kernel that adds dq with fp32 atomics: fewer tile products, but the last bits of dq vary between runs); the CPU is always deterministic", -kInf, kInf, {"deterministic", "atomic"}}, t.attention_backward);
  v(FieldSpec{"training", "run_dir", "directory for metrics, samples, the resolved config and checkpoints"}, t.run_dir);

  auto& d = c.data;
  v(FieldSpec{"data", "train_files", "glob pattern of training token shards"}, d.train_files);
  v(FieldSpec{"data", "val_files", "glob pattern of validation token shards"}, d.val_files);
  v(FieldSpec{"data", "tokenizer", "\"byte\" or the path of a Hugging Face tokenizer.json (for decoding samples)", -kInf, kInf, {"byte"}, true}, d.tokenizer);
  v(FieldSpec{"data", "layout", "how shards are cut into windows of seq_len + 1 tokens: \"stream\" (anywhere in the concatenated documents, the paper's), \"document\" (each window starts at a document's BOS), \"bos\" (BOS + seq_len stream tokens); docs/data.md", -kInf, kInf, {"stream", "document", "bos"}}, d.layout);

  auto& k = c.checkpoint;
  v(FieldSpec{"checkpoint", "interval", "save every this many steps", 1, kInf}, k.interval);
  v(FieldSpec{"checkpoint", "keep_latest_k", "keep the newest k checkpoints", 1, kInf}, k.keep_latest_k);
  v(FieldSpec{"checkpoint", "keep_every", "also keep every checkpoint whose step is a multiple of this; null = none", 1, kInf}, k.keep_every);
  v(FieldSpec{"checkpoint", "resume", "\"auto\" (newest valid checkpoint of run_dir), \"never\", or a checkpoint directory", -kInf, kInf, {"auto", "never"}, true}, k.resume);

  auto& l = c.logging;
  v(FieldSpec{"logging", "level", "log level", -kInf, kInf, {"trace", "debug", "info", "warn", "error", "off"}}, l.level);
  v(FieldSpec{"logging", "log_interval", "print a progress line every this many steps", 1, kInf}, l.log_interval);
  v(FieldSpec{"logging", "eval_interval", "validation loss every this many steps", 1, kInf}, l.eval_interval);
  v(FieldSpec{"logging", "eval_tokens", "validation tokens per evaluation (a fixed prefix of the val shards)", 1, kInf}, l.eval_tokens);
  v(FieldSpec{"logging", "sample_interval", "generate a text sample every this many steps", 1, kInf}, l.sample_interval);
  v(FieldSpec{"logging", "sample_tokens", "tokens per text sample", 1, kInf}, l.sample_tokens);
  v(FieldSpec{"logging", "analysis_interval", "measure sink rate, kurtosis, max activation and sparsity on a fixed validation batch every this many steps; null = never", 1, kInf}, l.analysis_interval);
  v(FieldSpec{"logging", "analysis_samples", "validation sequences of the periodic analysis", 1, kInf}, l.analysis_samples);

  auto& x = c.distributed;
  v(FieldSpec{"distributed", "backend", "gradient all-reduce: auto (NCCL on GPUs, MPI on CPUs), mpi or nccl", -kInf, kInf, {"auto", "mpi", "nccl"}}, x.backend);
  v(FieldSpec{"distributed", "zero_stage", "0: every rank keeps the optimizer state, 1: sharded across ranks (ZeRO-1)", 0, 1}, x.zero_stage);
  v(FieldSpec{"distributed", "reduce_dtype", "the dtype the gradients are averaged in across ranks: fp32 (the paper's) or bf16 (half the traffic; each rank's gradient is rounded to bf16 before the sum, the average rounded again after; training.device = cuda only)", -kInf, kInf, {"fp32", "bf16"}}, x.reduce_dtype);
}

// Values computed from the config (parameter counts, FLOPs per token). Filled by resolve().
struct Derived {
  int64_t head_dim = 0;               // D = C / H
  int64_t params_total = 0;
  int64_t params_non_embedding = 0;   // without the embedding and LM head matrices
  int64_t params_matmul = 0;          // N of the FLOP formula: blocks' matmuls + LM head
  double flops_per_token = 0;         // 6 N + 12 L H D T
  int64_t tokens_per_step_per_rank = 0;
};

// Loads a JSON file over the defaults. Unknown keys, wrong types and out-of-range values end with an Error
// naming the file and key. Then applies the overrides ("--section.key=value", without the leading dashes
// or with them) and validates the whole.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Applies one "section.key=value" override. Throws a usage Error naming the key on any problem.
void apply_override(Config& c, const std::string& assignment);

// Reads values from a parsed JSON object (keys missing from it keep their current values).
void merge_json(Config& c, const nlohmann::json& j, const std::string& origin);

// Checks ranges, choices and shape consistency; fills the null optionals (num_kv_heads, intermediate_size).
void resolve(Config& c);

// Data files must exist for training; the config command does not need them.
void validate_data_files(const Config& c);

// The attention as logs and reports name it: the normaliser, then " + SSMax" and " + output gate" when on.
std::string attention_label(const ModelConfig& m);

Derived derive(const Config& c);

nlohmann::ordered_json to_json(const Config& c);                    // every key, resolved
nlohmann::ordered_json to_json(const Config& c, const Derived& d);  // plus a "derived" section

// SwiGLU width rule of the paper's configs (and fla's GatedMLP): int(hidden * hidden_ratio * 2 / 3) rounded up
// to a multiple of 256. The caller keeps hidden * hidden_ratio within int64.
int64_t swiglu_width(int64_t hidden_size, double hidden_ratio = 4.0);

// Strict JSON reads, as config files are read: integers only from integral numbers within int64 (1e5 yes,
// 2.5 no), numbers, booleans, strings; false when the value has another type.
bool from_json_value(const nlohmann::json& j, int64_t& out);
bool from_json_value(const nlohmann::json& j, double& out);
bool from_json_value(const nlohmann::json& j, bool& out);
bool from_json_value(const nlohmann::json& j, std::string& out);

// The key reference of docs/configs.md: a Markdown table of every key with its type, default and meaning.
std::string config_reference_markdown();

// Expands a glob pattern into a sorted list of files (empty if none match).
std::vector<std::string> glob_files(const std::string& pattern);

}  // namespace sp
