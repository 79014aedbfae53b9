// softpick checkpoint inspect DIR : step, config summary, tensors, checksums.
#include "checkpoint/checkpoint.h"
#include "checkpoint/safetensors.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/check.h"

#include <filesystem>
#include <iostream>

namespace sp {

namespace {

int inspect(const Argv& argv) {
  const CommandSpec spec{"checkpoint inspect", "DIR [--tensors]",
                         "Verify a checkpoint (files, sizes, SHA-256) and print its step, config summary and "
                         "tensors. DIR may also be a run directory: then every checkpoint in it is checked.",
                         {{"tensors", "", "list every tensor with its shape"}}, 1, 1};
  const auto parsed = parse_command(spec, argv);
  if (!parsed) return 0;
  const ParsedArgs& a = *parsed;
  std::vector<std::string> dirs;
  for (const auto& e : list_checkpoints(a.positional[0])) dirs.push_back(e.dir);
  if (dirs.empty()) dirs.push_back(a.positional[0]);
  int bad = 0;
  for (const auto& dir : dirs) {
    nlohmann::json st;
    try {
      st = verify_checkpoint(dir);
    } catch (const Error& e) {
      std::cout << dir << "\n  valid       NO: " << e.what() << "\n";
      ++bad;
      continue;
    }
    const Config c = checkpoint_config(st, dir);
    const Derived d = derive(c);
    std::cout << dir << "\n"
              << "  valid       yes (sizes and SHA-256 of its tensor files match state.json)\n"
              << "  step        " << st["step"] << " (" << st["updates"] << " updates, " << st["tokens_seen"]
              << " tokens seen, " << st["skipped"]["total"] << " skipped)\n"
              << "  model       " << attention_label(c.model) << ", "
              << c.model.num_hidden_layers << " x " << c.model.hidden_size << ", " << c.model.num_heads
              << " heads (" << *c.model.num_kv_heads << " kv), vocab " << c.model.vocab_size << ", "
              << d.params_total << " parameters\n"
              << "  data        position " << st["loader"]["consumed"] << " of " << st["loader"]["windows_per_epoch"]
              << " windows per epoch, seed " << c.training.seed << "\n";
    SafetensorsReader model((std::filesystem::path(dir) / "model.safetensors").string());
    std::cout << "  tensors     " << model.tensors().size() << " in model.safetensors\n";
    if (a.has("tensors"))
      for (const auto& [name, info] : model.tensors())
        std::cout << "    " << name << " " << nlohmann::json(info.shape).dump() << "\n";
  }
  return bad ? int(ExitCode::Failure) : 0;
}

}  // namespace

int cmd_checkpoint(const Argv& argv) {
  return run_subcommand(
      "checkpoint", {{"inspect", "verify a checkpoint (or every checkpoint of a run directory) and summarise it", inspect}},
      argv);
}

}  // namespace sp
