#include "cli/args.h"

#include "core/check.h"

#include <algorithm>
#include <cmath>
#include <charconv>
#include <iostream>

namespace sp {

std::optional<std::string> ParsedArgs::get(const std::string& flag) const {
  auto it = flags.find(flag);
  if (it == flags.end()) return std::nullopt;
  return it->second;
}

std::optional<long long> ParsedArgs::get_int(const std::string& flag) const {
  auto s = get(flag);
  if (!s) return std::nullopt;
  long long v = 0;
  auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
  if (ec != std::errc() || p != s->data() + s->size())
    usage_fail("--{}={}: expected an integer", flag, *s);
  return v;
}

std::optional<double> ParsedArgs::get_double(const std::string& flag) const {
  auto s = get(flag);
  if (!s) return std::nullopt;
  double v = 0;
  auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
  if (s->empty() || ec != std::errc() || p != s->data() + s->size() || !std::isfinite(v))
    usage_fail("--{}={}: expected a number", flag, *s);
  return v;
}

std::optional<long long> ParsedArgs::get_positive(const std::string& flag) const {
  auto v = get_int(flag);
  if (v && *v < 1) usage_fail("--{}={}: must be at least 1", flag, *v);
  return v;
}

std::string usage(const CommandSpec& spec) {
  std::string u = fmt::format("usage: softpick {} {}\n  {}\n", spec.name, spec.synopsis, spec.summary);
  if (!spec.flags.empty() || spec.accepts_overrides) u += "options:\n";
  for (const auto& f : spec.flags) {
    std::string lhs = "--" + f.name + (f.value_name.empty() ? "" : "=" + f.value_name);
    u += fmt::format("  {:<28} {}\n", lhs, f.help);
  }
  if (spec.accepts_overrides)
    u += fmt::format("  {:<28} {}\n", "--section.key=value", "override any config key (see docs/configs.md)");
  u += fmt::format("  {:<28} {}\n", "--help", "show this help");
  return u;
}

ParsedArgs parse_args(const CommandSpec& spec, const std::vector<std::string>& argv) {
  ParsedArgs out;
  auto bad = [&](const std::string& why) { usage_fail("{}\n{}", why, usage(spec)); };
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "--help" || a == "-h") { out.help = true; continue; }
    if (a.rfind("--", 0) != 0 || a == "--") { out.positional.push_back(a); continue; }
    std::string body = a.substr(2);
    std::string name = body.substr(0, body.find('='));
    auto flag = std::find_if(spec.flags.begin(), spec.flags.end(), [&](auto& f) { return f.name == name; });
    if (flag == spec.flags.end()) {
      if (spec.accepts_overrides && name.find('.') != std::string::npos) {
        if (body.find('=') == std::string::npos) bad("override " + a + " needs a value: --section.key=value");
        out.overrides.push_back(body);
        continue;
      }
      bad("unknown option " + a);
    }
    if (flag->value_name.empty()) {
      if (body.find('=') != std::string::npos) bad("option --" + name + " takes no value");
      out.flags[name] = "";
    } else if (body.find('=') != std::string::npos) {
      out.flags[name] = body.substr(body.find('=') + 1);
    } else if (i + 1 < argv.size()) {
      out.flags[name] = argv[++i];
    } else {
      bad("option --" + name + " needs a value " + flag->value_name);
    }
  }
  if (out.help) return out;
  if (out.positional.size() < spec.min_positional) bad("missing arguments");
  if (out.positional.size() > spec.max_positional) bad("unexpected argument " + out.positional.back());
  return out;
}

std::optional<ParsedArgs> parse_command(const CommandSpec& spec, const std::vector<std::string>& argv) {
  ParsedArgs a = parse_args(spec, argv);
  if (!a.help) return a;
  std::cout << usage(spec);
  return std::nullopt;
}

int run_subcommand(const char* command, const std::vector<Subcommand>& subs, const std::vector<std::string>& argv) {
  std::string text = fmt::format("usage: softpick {} <subcommand> ...\nsubcommands:\n", command);
  for (const auto& s : subs) text += fmt::format("  {:<10} {}\n", s.name, s.summary);
  if (argv.empty()) usage_fail("missing subcommand\n{}", text);
  if (argv[0] == "--help" || argv[0] == "-h") {
    std::cout << text;
    return 0;
  }
  for (const auto& s : subs)
    if (argv[0] == s.name) return s.run(std::vector<std::string>(argv.begin() + 1, argv.end()));
  usage_fail("unknown {} subcommand '{}'\n{}", command, argv[0], text);
}

}  // namespace sp
