// `softpick analyze`: run a trained model on held-out sequences and measure what the paper measures
// (docs/analysis.md): attention-sink rate, hidden-state kurtosis and extremes, attention sparsity; optionally
// dump chosen attention maps as .npy files. docs/analysis.md defines each number and the JSON fields.
//
// Two levels:
//   * analyze_sequences(): the measurement, for any Model and any host tokens (the command below, and the
//     training loop if it wants periodic analysis records);
//   * run_analysis(): the command: resolve the checkpoint, load its config and weights on its backend,
//     read sequences from token shards, measure, print the table, write the JSON and the dumps.
#pragma once

#include "analysis/metrics.h"
#include "model/model.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace sp {

struct AnalysisOptions {
  double sink_eps = 0.3;     // a head is a sink in a sequence when its mean weight on key 0 exceeds this
  double near_zero = 1e-5;   // second sparsity threshold: |a| <= near_zero
  std::vector<std::pair<int64_t, int64_t>> dump;  // (layer, head) maps of the first sequence to write
  std::string dump_dir;      // where: DIR/attention_L{l}_H{h}.npy, (T, T) float32
};

struct AnalysisReport {
  int64_t sequences = 0, seq_len = 0, layers = 0, heads = 0;
  double sink_eps = 0, near_zero = 0;
  std::vector<int64_t> sink_cells;    // (L, H) sequences with a defined sink score (any real position)
  std::vector<int64_t> sink_count;    // (L, H) of those, sequences where the head is a sink
  std::vector<double> sink_score_sum; // (L, H) sum over sequences of the mean weight on key 0
  std::vector<Moments> hidden;        // (L + 1) [0] embedding output, [l + 1] output of block l
  std::vector<SparsityCounts> sparsity;  // (L) causal-triangle counts of block l's attention maps
  std::vector<Moments> gate;          // (L) the output gate's scores sigmoid(h W_g^T) in block l; empty
                                      // without model.attention_gate
  std::vector<std::string> dumped;    // .npy files written

  double sink_rate() const;                         // over all (sequence, layer, head) cells
  double sink_rate_layer(int64_t l) const;          // over (sequence, head) cells of block l
  double sink_rate_head(int64_t l, int64_t h) const;
  double sink_score() const;                            // mean weight on key 0, over all cells
  double sink_score_head(int64_t l, int64_t h) const;  // mean over sequences
  double sink_score_layer(int64_t l) const;
  Moments hidden_all() const;          // pooled over every hidden state
  SparsityCounts sparsity_all() const;
};

// Runs `model` on S sequences of T tokens (host, (S, T)), one sequence per forward pass, and measures
// them. `valid` (S, T), 1 = real position, or empty (every position real) masks padding out of every
// metric. Needs the CPU backend's fp32 activations (the maps are materialised on the host).
AnalysisReport analyze_sequences(Model& model, std::span<const int32_t> tokens, int64_t S, int64_t T,
                                 const AnalysisOptions& opt, std::span<const uint8_t> valid = {});

// The attention maps of block `layer` for the last forward() of `acts`, from the naive reference on the
// saved attention inputs (q after RoPE, or after SSMax scaling with model.ssmax; k after RoPE; v):
//   probs (B, H, T, T), zero above the diagonal; out (B, T, H, D), equal to the flash output acts.att.
void attention_maps(Model& model, const Activations& acts, int64_t layer, std::vector<float>& probs,
                    std::vector<float>& out);

// The metrics as JSON (the fields of docs/analysis.md) and as the table printed by the command.
nlohmann::ordered_json to_json(const AnalysisReport& r);
std::string format_report(const AnalysisReport& r);

// "L:H[,L:H...]" -> pairs; a usage Error naming `flag` on any malformed entry (ranges are checked later,
// against the model).
std::vector<std::pair<int64_t, int64_t>> parse_head_list(const std::string& text, const std::string& flag);

struct AnalyzeRequest {
  std::string checkpoint;   // a checkpoint directory, or a run directory (its newest valid checkpoint)
  std::string data;         // glob pattern of token shards; empty: the checkpoint's data.val_files
  int64_t seq_len = 0;      // T; 0: the checkpoint's training.seq_len
  int64_t samples = 8;      // S, the first S windows of the shards in file order
  std::string layout;       // data layout of the windows (data/windows.h); empty: the checkpoint's data.layout
  std::string json_path;    // empty: RUN_DIR/analysis/step_XXXXXXXX.json when the checkpoint is in a run
  std::string device;       // "cpu" or "cuda"; empty: the checkpoint's training.device
  int threads = 0;          // 0: all cores
  AnalysisOptions options;
};

// The whole command; prints the table on stdout and returns the JSON it wrote.
nlohmann::ordered_json run_analysis(const AnalyzeRequest& req);

}  // namespace sp
