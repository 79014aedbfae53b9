// softpick: pretrain Llama-style models with softmax or softpick attention. See README.md.
#include "cli/commands.h"
#include "core/check.h"
#include "core/log.h"
#include "dist/comm.h"

#include <csignal>
#include <cstdio>

namespace {

const sp::Command kCommands[] = {
    {"config", "print the fully resolved run config (defaults, overrides, derived values)", sp::cmd_config},
    {"data", "inspect and validate token shards", sp::cmd_data},
    {"train", "train a model from a config", sp::cmd_train},
    {"bench", "measure training and attention throughput on this machine", sp::cmd_bench},
    {"checkpoint", "verify and summarise checkpoints", sp::cmd_checkpoint},
    {"eval", "validation loss, benchmark tasks and passkey retrieval of a checkpoint", sp::cmd_eval},
    {"sample", "generate text from a checkpoint (KV cache; temperature, top-k, top-p)", sp::cmd_sample},
    {"analyze", "measure sink rate, kurtosis and attention sparsity of a checkpoint", sp::cmd_analyze},
    {"export", "write a checkpoint as a Hugging Face transformers model directory", sp::cmd_export},
    {"import", "read a Hugging Face (Llama or fla) model directory into a checkpoint", sp::cmd_import},
    {"quantize", "quantize a checkpoint's weights (rtn, hqq, nf4, fp4, int8, gptq) for the quantization study", sp::cmd_quantize},
};

void print_usage(std::FILE* out) {
  std::fprintf(out, "usage: softpick <command> [options]\n\ncommands:\n");
  for (const auto& c : kCommands) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
  std::fprintf(out, "\nRun `softpick <command> --help` for the options of a command.\n");
}

}  // namespace

int main(int argc, char** argv) {
  sp::init_logging("info");
  // A file-size limit (ulimit -f) makes writes fail with EFBIG, reported like a full disk, instead of
  // killing the process halfway through a checkpoint.
  std::signal(SIGXFSZ, SIG_IGN);
  if (argc < 2) {
    print_usage(stderr);
    return int(sp::ExitCode::Usage);
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_usage(stdout);
    return 0;
  }
  for (const auto& c : kCommands) {
    if (name != c.name) continue;
    try {
      return c.run(sp::Argv(argv + 2, argv + argc));
    } catch (const sp::Error& e) {
      spdlog::error("{}", e.what());
      sp::abort_job(int(e.code()));  // in an MPI job: end every rank now, not only this one
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      sp::abort_job(int(sp::ExitCode::Failure));
    }
  }
  std::fprintf(stderr, "softpick: unknown command '%s'\n\n", name.c_str());
  print_usage(stderr);
  return int(sp::ExitCode::Usage);
}
