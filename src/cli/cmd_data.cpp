// softpick data inspect SHARD... : header, token count, id range, document count, validation.
#include "cli/args.h"
#include "cli/commands.h"
#include "core/check.h"
#include "data/shard.h"
#include "data/tokenizer.h"

#include <iostream>
#include <optional>

namespace sp {

namespace {

int inspect(const Argv& argv) {
  const CommandSpec spec{
      "data inspect", "SHARD... [--vocab-size=N] [--bos-id=N] [--tokenizer=byte|PATH] [--decode=N]",
      "Validate token shards and print each one's header, token count, id range and document count.",
      {{"vocab-size", "N", "also check that every token id is < N"},
       {"bos-id", "N", "the BOS token id used to count documents (default 1)"},
       {"tokenizer", "SPEC", "\"byte\" or a tokenizer.json, for --decode (default byte)"},
       {"decode", "N", "print the first N tokens of each shard as text"}},
      1};
  const auto parsed = parse_command(spec, argv);
  if (!parsed) return 0;
  const ParsedArgs& a = *parsed;
  const int64_t vocab = a.get_int("vocab-size").value_or(0);
  const int64_t bos = a.get_int("bos-id").value_or(1);
  const int64_t decode = a.get_int("decode").value_or(0);
  std::optional<Tokenizer> tok;
  if (decode > 0) tok = Tokenizer::load(a.get("tokenizer").value_or("byte"));
  for (const auto& path : a.positional) {
    Shard s(path, vocab, bos);  // throws with the file and offset on any problem
    const auto& st = s.stats();
    std::cout << path << "\n"
              << "  header      magic " << kShardMagic << ", version " << s.version()
              << (s.version() == 1 ? " (uint16 tokens)" : " (uint32 tokens)") << "\n"
              << "  tokens      " << st.num_tokens << "\n"
              << "  token ids   " << st.min_token << " .. " << st.max_token << "\n"
              << "  documents   " << st.num_documents << " (BOS id " << bos << ")\n"
              << "  valid       yes" << (vocab > 0 ? " (ids < " + std::to_string(vocab) + ")" : "") << "\n";
    if (tok) {
      std::vector<int32_t> ids(size_t(std::min<int64_t>(decode, st.num_tokens)));
      s.read(0, ids);
      std::cout << "  text        " << tok->decode(ids) << "\n";
    }
  }
  return 0;
}

}  // namespace

int cmd_data(const Argv& argv) {
  return run_subcommand(
      "data", {{"inspect", "validate token shards and print their header and statistics", inspect}}, argv);
}

}  // namespace sp
