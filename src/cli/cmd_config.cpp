// softpick config CONFIG.json [--section.key=value ...]
#include "cli/args.h"
#include "cli/commands.h"
#include "config/config.h"
#include "core/check.h"
#include "dist/memory.h"

#include <iostream>

namespace sp {

int cmd_config(const Argv& argv) {
  const CommandSpec spec{
      "config", "CONFIG.json [--section.key=value ...]",
      "Print the fully resolved config as JSON: defaults filled in, overrides applied, derived values added.",
      {{"check-data", "", "also check that data.train_files and data.val_files match shard files"},
       {"keys", "", "print the reference of every key (section, key, type, default, meaning) as Markdown"},
       {"world-size", "N", "estimate the memory per rank for N data-parallel ranks (default 1)"}},
      0, 1, true};
  const auto parsed = parse_command(spec, argv);
  if (!parsed) return 0;
  const ParsedArgs& a = *parsed;
  if (a.has("keys")) {
    std::cout << config_reference_markdown();
    return 0;
  }
  if (a.positional.empty()) usage_fail("missing CONFIG.json\n{}", usage(spec));
  Config c = load_config(a.positional[0], a.overrides);
  if (a.has("check-data")) validate_data_files(c);
  const long long world = a.get_positive("world-size").value_or(1);
  auto j = to_json(c, derive(c));
  j["derived"]["tokens_per_step"] = derive(c).tokens_per_step_per_rank * world;
  j["derived"]["memory_per_rank"] = memory_report(c, int(world));
  std::cout << j.dump(2) << "\n";
  return 0;
}

}  // namespace sp
