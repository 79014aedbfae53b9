// Checkpoints: crash-safe, verifiable, and enough to continue a run bit for bit (docs/checkpoints.md).
//
// run_dir/checkpoints/step_00001000/
//   model.safetensors      fp32 master weights under Hugging Face Llama names
//   optimizer.safetensors  AdamW moments: "<name>.exp_avg" and "<name>.exp_avg_sq"
//   state.json             format version, TrainState, the resolved config, and the size and SHA-256 of both
//                          tensor files
// A checkpoint is written into checkpoints/.tmp-step_00001000/, every file fsynced, then renamed into place
// and the parent directory fsynced: a crash leaves either no new checkpoint or a complete one.
#pragma once

#include "config/config.h"
#include "data/loader.h"
#include "model/model.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace sp {

constexpr int kCheckpointFormatVersion = 1;

// Everything besides weights and moments that the next step depends on.
struct TrainState {
  int64_t step = 0;              // optimizer steps completed = the next step to run
  int64_t updates = 0;           // AdamW updates applied (steps minus skipped), for the bias correction
  int64_t tokens_seen = 0;       // training tokens consumed by all ranks
  LoaderPosition loader;         // the data stream position
  int64_t skipped_total = 0;     // non-finite steps skipped so far
  int64_t skipped_consecutive = 0;
};

// The tensors of a checkpoint, in host memory, each a whole flat buffer in the layout of the parameter table
// (specs' offsets; padding zero). Weights only, or weights and AdamW moments.
struct CheckpointTensors {
  std::vector<float> params, exp_avg, exp_avg_sq;
};

// Writes `text` to `path` and fsyncs it; an Error names the file on failure.
void write_text_file(const std::string& path, const std::string& text);

// The TrainState fields of state.json, and back (a json::exception on a missing field).
void add_train_state(nlohmann::ordered_json& j, const TrainState& s);
TrainState train_state_from_json(const nlohmann::json& j);

struct CheckpointEntry {
  std::string dir;
  int64_t step;
};

// "step_00001000"
std::string checkpoint_name(int64_t step);

// Checkpoint directories of a run (well-named ones only, valid or not), oldest first.
std::vector<CheckpointEntry> list_checkpoints(const std::string& run_dir);

// Writes the checkpoint of `state.step` and returns its directory. With empty moments (tensors.exp_avg) it is
// a weights-only checkpoint: no optimizer.safetensors, `weights_only: true` in state.json, and loading it
// with the optimizer gives zero moments. On any failure the partial checkpoint is
// removed, the earlier ones are untouched, and an Error names the file and the reason.
// `extra` files (quantization.json and the packed weights of `softpick quantize`) are written by their
// callbacks into the directory before state.json, which records their size and SHA-256 like the tensor files.
struct CheckpointExtra {
  std::string name;                                 // the file name within the checkpoint
  std::function<void(const std::string& path)> write;  // creates the file, fsynced, or throws an Error
};
std::string save_checkpoint(const std::string& run_dir, const std::vector<ParamSpec>& specs,
                            const CheckpointTensors& tensors, const TrainState& state, const Config& cfg,
                            const std::vector<CheckpointExtra>& extra = {});

// Checks that state.json parses and that both tensor files (and any extra file it records) exist with the
// recorded size and SHA-256.
// Returns the parsed state.json; an Error names the file and the problem.
nlohmann::json verify_checkpoint(const std::string& dir);

// The newest checkpoint of a run directory that verifies, and its state.json; damaged ones are skipped with
// a warning naming the file. nullopt if the run has no checkpoint; an Error if it has some but none is valid.
std::optional<std::string> newest_valid_checkpoint(const std::string& run_dir, nlohmann::json* state = nullptr);

// `path` as a checkpoint directory, or a run directory's newest valid checkpoint; `state` gets its
// verified state.json. An Error names the path when it is neither.
std::string resolve_checkpoint(const std::string& path, nlohmann::json& state);

// Reads the weights (and, with `with_optimizer`, the moments) of a verified checkpoint into `out` (resized to
// `flat_elements`), checking that every tensor of `specs` is there with its shape. Returns the saved state.
TrainState load_checkpoint(const std::string& dir, const std::vector<ParamSpec>& specs, size_t flat_elements,
                           CheckpointTensors& out, bool with_optimizer);

// Weights only, straight into a model's working copy, for passes without an optimizer (analysis,
// evaluation, sampling); training restores through AdamW::set_master_weights instead.
void load_weights(const std::string& dir, Model& model);

// The resolved config stored in a checkpoint.
Config checkpoint_config(const nlohmann::json& state_json, const std::string& dir);

// Deletes all but the newest `keep_latest_k` checkpoints, keeping also those whose step is a multiple of
// `keep_every` (when set). The newest checkpoint is never deleted.
void rotate_checkpoints(const std::string& run_dir, int64_t keep_latest_k, std::optional<int64_t> keep_every);

// Config keys that may not change when a run resumes (model shape and variant, the data order).
// Returns one line per difference; `unsafe` is set if any difference is not allowed.
std::vector<std::string> config_differences(const Config& saved, const Config& now, bool& unsafe);

}  // namespace sp
