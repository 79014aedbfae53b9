// A small command-line parser shared by every subcommand: declared flags, positional arguments and
// "--section.key=value" config overrides. Unknown flags print the command's usage and exit 2.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sp {

struct FlagSpec {
  std::string name;        // without dashes, e.g. "vocab-size"
  std::string value_name;  // empty for a boolean switch
  std::string help;
};

struct CommandSpec {
  std::string name;       // "config", "data inspect", ...
  std::string synopsis;   // "CONFIG.json [--section.key=value ...]"
  std::string summary;    // one line
  std::vector<FlagSpec> flags;
  size_t min_positional = 0;
  size_t max_positional = SIZE_MAX;
  bool accepts_overrides = false;
};

struct ParsedArgs {
  std::vector<std::string> positional;
  std::vector<std::string> overrides;  // "section.key=value"
  std::map<std::string, std::string> flags;
  bool help = false;

  bool has(const std::string& flag) const { return flags.count(flag) > 0; }
  std::optional<std::string> get(const std::string& flag) const;
  // Integer flag value; a usage Error naming the flag if it is not an integer.
  std::optional<long long> get_int(const std::string& flag) const;
  // A finite number; a usage Error naming the flag otherwise.
  std::optional<double> get_double(const std::string& flag) const;
  // An integer flag that must be at least 1 (counts, lengths, threads); a usage Error naming it otherwise.
  std::optional<long long> get_positive(const std::string& flag) const;
};

// Parses argv (without the program and command names). Throws a usage Error whose message includes the
// usage text on unknown flags, missing values or a wrong number of positional arguments.
ParsedArgs parse_args(const CommandSpec& spec, const std::vector<std::string>& argv);

std::string usage(const CommandSpec& spec);

// parse_args, then --help: prints the usage and returns nullopt (the command then exits 0).
std::optional<ParsedArgs> parse_command(const CommandSpec& spec, const std::vector<std::string>& argv);

// A command made of subcommands ("data inspect", "checkpoint inspect"): runs the one named by argv[0].
struct Subcommand {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>& argv);
};
int run_subcommand(const char* command, const std::vector<Subcommand>& subs, const std::vector<std::string>& argv);

}  // namespace sp
