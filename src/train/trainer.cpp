#include "train/trainer.h"

#include "analysis/analyze.h"

#include "backend/backend.h"
#include "checkpoint/checkpoint.h"
#include "core/check.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/rng.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "dist/comm.h"
#include "dist/memory.h"
#include "model/decode.h"
#include "model/model.h"
#include "train/metrics.h"
#include "train/optimizer.h"
#include "train/perf.h"
#include "train/resume.h"
#include "train/run_state.h"
#include "train/sample.h"
#include "train/schedule.h"
#include "train/step_guard.h"

#include <omp.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>

namespace sp {

namespace {

std::atomic<bool> g_stop_requested{false};

// The first Ctrl-C (or SIGTERM) asks the loop to stop after the current step; a second one kills.
void on_stop_signal(int) {
  g_stop_requested = true;
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

// windows (B, T+1) -> inputs (B, T) = tokens 0..T-1, targets (B, T) = tokens 1..T
void split_windows(const std::vector<int32_t>& windows, int64_t B, int64_t T, std::vector<int32_t>& inputs,
                   std::vector<int32_t>& targets) {
  inputs.resize(size_t(B * T));
  targets.resize(size_t(B * T));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      inputs[size_t(b * T + t)] = windows[size_t(b * (T + 1) + t)];
      targets[size_t(b * T + t)] = windows[size_t(b * (T + 1) + t + 1)];
    }
}

// Mean validation loss over the first `batches` global batches of the (unshuffled) val stream; each rank
// scores its share and the sums are combined.
double evaluate(Model& model, Activations& acts, DataLoader& val, int64_t batches, int64_t B, int64_t T,
                Communicator& comm) {
  std::vector<int32_t> windows(size_t(B * (T + 1))), inputs, targets;
  val.rewind();
  for (int64_t i = 0; i < batches; ++i) {
    val.next(windows);
    split_windows(windows, B, T, inputs, targets);
    model.forward(acts, inputs, B, T);
    model.loss(acts, targets, /*with_grad=*/false, 0.0);
  }
  const LossSum total = model.take_loss(acts);
  std::vector<double> sums = {total.sum, double(total.count)};
  comm.all_reduce_host(sums, ReduceOp::Sum);
  return sums[0] / std::max(1.0, sums[1]);
}

std::string sample_text(Decoder& dec, const Tokenizer& tok, const Config& cfg, int64_t step) {
  SampleOptions opt;
  opt.max_new_tokens = cfg.logging.sample_tokens;
  opt.seed = mix_seed(uint64_t(cfg.training.seed), 0x5A3B1E, uint64_t(step));  // independent of training state
  auto ids = generate_sliding(dec, {int32_t(cfg.model.bos_token_id)}, opt);
  return tok.decode(ids);
}

LoaderOptions loader_options(const Config& c, bool shuffle, const Communicator& comm) {
  LoaderOptions o;
  o.rank = comm.rank();
  o.world_size = comm.size();
  o.batch_size = c.training.batch_size;
  o.seq_len = c.training.seq_len;
  o.vocab_size = c.model.vocab_size;
  o.bos_token_id = c.model.bos_token_id;
  o.layout = parse_data_layout(c.data.layout);
  o.seed = uint64_t(c.training.seed);
  o.shuffle = shuffle;
  return o;
}


// Sink rate, kurtosis, largest activation and sparsity of the current weights (docs/analysis.md).
nlohmann::ordered_json periodic_analysis(Model& model, const std::vector<int32_t>& tokens, int64_t S, int64_t T,
                                         int64_t step) {
  const AnalysisReport r = analyze_sequences(model, tokens, S, T, AnalysisOptions{});
  const Moments all = r.hidden_all();
  nlohmann::ordered_json j = {{"type", "analysis"}, {"step", step}, {"sink_rate", r.sink_rate()},
                              {"kurtosis", all.kurtosis()}, {"max_abs_activation", all.max_abs()},
                              {"sparsity_zero", r.sparsity_all().zero_fraction()}};
  spdlog::info("step {:>6} | sink rate {:.2f}% | kurtosis {:.1f} | max |act| {:.2f} | attention zeros {:.1f}%", step,
               100 * r.sink_rate(), all.kurtosis(), all.max_abs(), 100 * r.sparsity_all().zero_fraction());
  return j;
}

// What is left of the run after `done` steps, for the ETA: training steps, and the evaluations, analyses,
// samples and checkpoint saves the loop and its end will still do.
RunEta::Counts remaining_work(const Config& c, int64_t done) {
  const int64_t steps = c.training.steps, ci = c.checkpoint.interval;
  RunEta::Counts n{};
  n[RunEta::kStep] = steps - done;
  n[RunEta::kEval] = multiples_in(done, steps, c.logging.eval_interval) + 1;  // + the final one
  n[RunEta::kAnalysis] = c.logging.analysis_interval ? multiples_in(done, steps, *c.logging.analysis_interval) : 0;
  n[RunEta::kSample] = multiples_in(std::max<int64_t>(done, 1), steps, c.logging.sample_interval) + 1;
  n[RunEta::kCheckpoint] = multiples_in(done, steps + 1, ci) + (steps % ci != 0 ? 1 : 0);
  return n;
}

// The reused host buffers of a micro-batch: windows (B, T+1) -> inputs, targets (B, T).
struct Batch {
  std::vector<int32_t> windows, inputs, targets;
};

struct StepOutcome {
  double loss = 0, grad_norm = 0;  // the mean loss over every rank's tokens, the global gradient norm
  bool updated = false;            // false: non-finite loss or norm, the update was skipped
  bool stop = false;               // some rank was asked to stop (Ctrl-C, SIGTERM)
};

// One optimizer step: `accum` micro-batches of forward, loss and backward; the gradients averaged over the
// ranks while the last backward pass runs, bucket by bucket; the loss and norm read once and the stop
// request combined; then the clipped AdamW update, unless the loss or the norm is not finite.
StepOutcome train_step(Model& model, Activations& acts, AdamW& optimizer, DataLoader& data, Batch& batch,
                       Communicator& comm, NonFiniteGuard& guard, const Config& cfg, double lr, int64_t step,
                       TrainState& state) {
  const int64_t B = cfg.training.batch_size, T = cfg.training.seq_len;
  const int64_t accum = cfg.training.gradient_accumulation_steps;
  model.zero_grads();
  const double grad_scale = 1.0 / double(B * T * accum);  // gradients of the mean loss
  for (int64_t micro = 0; micro < accum; ++micro) {
    data.next(batch.windows);
    split_windows(batch.windows, B, T, batch.inputs, batch.targets);
    model.forward(acts, batch.inputs, B, T);
    model.loss(acts, batch.targets, /*with_grad=*/true, grad_scale);
    std::function<void(size_t)> reduce;  // on the last micro-batch: the earlier ones only accumulate
    if (micro == accum - 1) reduce = [&](size_t bucket) { optimizer.reduce_bucket(bucket); };
    model.backward(acts, reduce);
  }
  optimizer.finish_reduction();
  comm.watch();  // the host waits for the step's collectives (a dead peer ends the job here)
  // The one wait for the device in the step: the norm's read; the loss is done by then (take_loss's reset
  // after its read would make a second wait if the loss came first).
  StepOutcome out;
  out.grad_norm = optimizer.grad_norm();
  const LossSum loss = model.take_loss(acts);
  std::vector<double> global = {loss.sum, double(loss.count), g_stop_requested ? 1.0 : 0.0};
  comm.all_reduce_host(global, ReduceOp::Sum);
  out.loss = global[0] / global[1];
  out.stop = global[2] > 0;
  out.updated = guard.accept(out.loss, out.grad_norm);
  if (out.updated) {
    optimizer.step(lr, ++state.updates, clip_scale(out.grad_norm, cfg.training.max_norm));
  } else {
    spdlog::warn("step {}: non-finite loss ({}) or gradient norm ({}); update skipped ({} in a row)", step,
                 out.loss, out.grad_norm, guard.consecutive());
  }
  return out;
}

// What the backend holds after the first step, next to what `softpick config` predicts for a rank.
bool log_memory(const Backend& be, const Config& cfg, int world) {
  const Backend::MemoryUse use = be.memory_use();
  const MemoryBreakdown predicted =
      cfg.training.device == "cuda" ? gpu_memory_per_rank(cfg, world) : cpu_memory_per_rank(cfg, world);
  const double mib = double(1 << 20);
  spdlog::info("memory: {:.2f} MiB in use after the first step (peak {:.2f} MiB); predicted {:.2f} MiB",
               double(use.in_use) / mib, double(use.peak) / mib, predicted.total() / mib);
  return true;
}

}  // namespace

TrainSummary train(const Config& cfg, const TrainOptions& opt) {
  const int64_t B = cfg.training.batch_size, T = cfg.training.seq_len;
  const int64_t accum = cfg.training.gradient_accumulation_steps;
  const Derived derived = derive(cfg);

  // ---- set up: ranks, backend, where to start, run directory, model, optimizer, data ----
  std::unique_ptr<Communicator> comm = make_communicator();
  const bool rank0 = comm->rank() == 0;
  init_logging(cfg.logging.level, comm->rank(), comm->size());
  check_ranks_agree(cfg, *comm);
  validate_data_files(cfg);
  // Before the run directory is touched, so that a device this build lacks stops the run there. The
  // node's cores are shared by its ranks; on GPUs each rank takes the one of its local rank.
  const int threads = cfg.training.threads ? int(*cfg.training.threads)
                                           : std::max(1, omp_get_num_procs() / comm->local_size());
  auto backend = make_backend({cfg.training.device, threads, comm->local_rank(),
                               cfg.training.attention_backward == "deterministic"});
  comm = communicator_for(std::move(comm), cfg.distributed.backend, *backend);  // NCCL between GPUs
  const std::filesystem::path run_dir(cfg.training.run_dir);
  std::optional<std::string> resume_dir;
  if (rank0) {  // only rank 0 touches the run directory
    std::error_code ec;
    std::filesystem::create_directories(run_dir, ec);
    if (ec) fail("training.run_dir = \"{}\": cannot create it ({})", run_dir.string(), ec.message());
    resume_dir = choose_resume_checkpoint(cfg, opt.overwrite);
    if (resume_dir) check_resume_config(cfg, *resume_dir, /*weights_only=*/false);
    if (!opt.init_from.empty()) {
      if (resume_dir) usage_fail("--init-from {}: the run directory {} already has a checkpoint to resume; use "
                                 "another training.run_dir for the new run", opt.init_from, run_dir.string());
      check_resume_config(cfg, opt.init_from, /*weights_only=*/true);
    }
    spdlog::info("resolved config:\n{}", to_json(cfg, derived).dump(2));
    std::ofstream out(run_dir / "config.json");
    out << to_json(cfg).dump(2) << "\n";
    if (!out) fail("{}: cannot write the resolved config", (run_dir / "config.json").string());
  }
  if (const std::string d = broadcast_string(resume_dir.value_or(""), *comm); !d.empty()) resume_dir = d;

  Model model(cfg.model, *backend, size_t(comm->size()) * kParamAlign);
  if (cfg.distributed.reduce_dtype == "bf16" && backend->activation_dtype() != DType::BF16)
    usage_fail("distributed.reduce_dtype = bf16 needs training.device = cuda (the CPU backend has no bf16); "
               "use fp32");
  AdamW optimizer(cfg.optimizer, model, *comm, cfg.distributed.zero_stage,
                  cfg.distributed.reduce_dtype == "bf16" ? DType::BF16 : backend->grad_dtype());
  optimizer.set_master_weights(model.initial_weights(uint64_t(cfg.training.seed)));
  Activations acts = model.make_activations(B, T, recompute_from_name(cfg.training.activation_checkpointing));
  Decoder sampler(model, T);  // the samples' key/value cache, held for the run: its memory is known up front

  DataLoader train_data(glob_files(cfg.data.train_files), loader_options(cfg, true, *comm), "data.train_files");
  DataLoader val_data(glob_files(cfg.data.val_files), loader_options(cfg, false, *comm), "data.val_files");
  const int64_t global_B = B * comm->size();
  if (int64_t(val_data.windows_per_epoch()) < global_B)
    fail("data.val_files: {} windows of {} tokens, fewer than one global batch of {}; use more validation data "
         "or a smaller training.batch_size", val_data.windows_per_epoch(), T + 1, global_B);
  const int64_t val_batches = std::clamp<int64_t>(cfg.logging.eval_tokens / (global_B * T), 1,
                                                  int64_t(val_data.windows_per_epoch()) / global_B);
  const Tokenizer tokenizer = Tokenizer::load(cfg.data.tokenizer);

  TrainState state;
  NonFiniteGuard guard(cfg.training.max_skipped_steps);
  if (resume_dir) {
    state = restore_checkpoint(*resume_dir, /*resume=*/true, model, optimizer, *comm);
    train_data.restore(state.loader);  // the stream position is global: any world size continues it
    guard.restore(state.skipped_total, state.skipped_consecutive);
    spdlog::info("resuming from {} (step {}, {} tokens seen) on {} rank(s)", *resume_dir, state.step,
                 state.tokens_seen, comm->size());
    if (state.step >= cfg.training.steps)
      spdlog::warn("the run is already at step {} of training.steps = {}: nothing to train (raise "
                   "training.steps to continue, or use another training.run_dir)", state.step, cfg.training.steps);
  } else if (!opt.init_from.empty()) {
    restore_checkpoint(opt.init_from, /*resume=*/false, model, optimizer, *comm);
    spdlog::info("new run from the weights of {}", opt.init_from);
  }
  // the fixed validation sequences of the periodic analysis (rank 0 measures them)
  const int64_t analysis_S = std::min<int64_t>(cfg.logging.analysis_samples, int64_t(val_data.windows_per_epoch()));
  std::vector<int32_t> analysis_tokens;
  if (rank0 && cfg.logging.analysis_interval) analysis_tokens = val_data.first_inputs(analysis_S);
  std::optional<MetricsLog> metrics;  // rank 0 writes the metrics
  if (rank0) {
    const std::string metrics_path = (run_dir / "metrics.jsonl").string();
    truncate_metrics(metrics_path, state.step);  // a fresh run starts an empty file
    metrics.emplace(metrics_path);
  }
  auto record = [&](const nlohmann::ordered_json& r) {
    if (metrics) metrics->write(r);
  };

  if (cfg.lr_scheduler.warmup_steps > cfg.training.steps)
    spdlog::warn("lr_scheduler.warmup_steps ({}) exceeds training.steps ({}): the learning rate never reaches "
                 "optimizer.lr", cfg.lr_scheduler.warmup_steps, cfg.training.steps);
  const double peak_flops = backend->peak_flops();  // per rank
  spdlog::info("model: {} parameters ({} non-embedding), {} attention, {} rank(s) ({}) x {} threads{}, backend {}",
               derived.params_total, derived.params_non_embedding, attention_label(cfg.model), comm->size(),
               comm->name(), threads,
               optimizer.sharded() ? ", ZeRO-1" : "", backend->name());
  spdlog::info("data: {} train tokens in {} windows, {} val batches; {} tokens per step", train_data.total_tokens(),
               train_data.windows_per_epoch(), val_batches, derived.tokens_per_step_per_rank * comm->size());
  spdlog::log(peak_flops > 0 ? spdlog::level::info : spdlog::level::warn, "{}", peak_summary(*backend));

  g_stop_requested = false;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);

  // ---- the loop ----
  TrainSummary summary;
  summary.resumed_from = resume_dir ? state.step : -1;
  summary.steps_done = state.step;
  Batch batch{std::vector<int32_t>(size_t(B * (T + 1))), {}, {}};
  Stopwatch run_clock;
  RunEta eta;
  bool memory_logged = false;
  for (int64_t step = state.step; step < cfg.training.steps; ++step) {
    Stopwatch work_clock;  // times each periodic task for the ETA
    if (step % cfg.logging.eval_interval == 0) {
      check_replicas(model, *comm, step);
      const double val = evaluate(model, acts, val_data, val_batches, B, T, *comm);
      if (summary.first_val_loss == 0) summary.first_val_loss = val;
      summary.last_val_loss = val;
      record({{"type", "eval"}, {"step", step}, {"val_loss", val}});
      spdlog::info("step {:>6} | val loss {:.4f}", step, val);
      eta.add(RunEta::kEval, work_clock.seconds());
    }
    if (rank0 && cfg.logging.analysis_interval && step % *cfg.logging.analysis_interval == 0) {
      work_clock.reset();
      record(periodic_analysis(model, analysis_tokens, analysis_S, T, step));
      eta.add(RunEta::kAnalysis, work_clock.seconds());
    }
    if (rank0 && step > 0 && step % cfg.logging.sample_interval == 0) {
      work_clock.reset();
      const std::string text = sample_text(sampler, tokenizer, cfg, step);
      record({{"type", "sample"}, {"step", step}, {"text", text}});
      spdlog::info("sample at step {}:\n{}", step, text);
      eta.add(RunEta::kSample, work_clock.seconds());
    }

    if (fault_requested("error-at-step", step)) fail("injected fault at step {} (SOFTPICK_FAULT)", step);

    Stopwatch step_clock;
    const double lr = learning_rate(cfg, step);
    const StepOutcome out = train_step(model, acts, optimizer, train_data, batch, *comm, guard, cfg, lr, step, state);
    const double mean_loss = out.loss, norm = out.grad_norm;
    const bool finite = out.updated, stop = out.stop;
    state.step = step + 1;
    state.tokens_seen += B * T * accum * comm->size();
    state.loader = train_data.position();
    state.skipped_total = guard.total_skipped();
    state.skipped_consecutive = guard.consecutive();

    comm->watch();    // the step's last collectives (ZeRO-1's all-gather) and kernels may still be queued
    backend->sync();
    const double dt = step_clock.seconds();
    eta.add(RunEta::kStep, dt);
    const double tokens_per_s = double(B * T * accum * comm->size()) / dt;
    const double step_mfu = mfu(tokens_per_s * derived.flops_per_token, peak_flops * comm->size());
    if (!memory_logged) memory_logged = log_memory(*backend, cfg, comm->size());
    summary.steps_done = state.step;
    summary.skipped_steps = guard.total_skipped();
    summary.last_train_loss = mean_loss;
    record({{"type", "train"}, {"step", step}, {"loss", mean_loss}, {"lr", lr}, {"grad_norm", norm},
                   {"tokens_per_s", tokens_per_s}, {"mfu", step_mfu}, {"step_ms", dt * 1e3},
                   {"skipped", !finite}, {"elapsed_s", run_clock.seconds()}});
    if (step % cfg.logging.log_interval == 0 || state.step == cfg.training.steps) {
      const auto left = eta.seconds_left(remaining_work(cfg, state.step));
      spdlog::info("step {:>6}/{} | loss {:.4f} | lr {:.2e} | norm {:.3f} | {:.0f} tok/s | MFU {} | ETA {}",
                   step, cfg.training.steps, mean_loss, lr, norm, tokens_per_s, format_mfu(step_mfu),
                   left ? format_duration(*left) : "--");
    }
    if (state.step % cfg.checkpoint.interval == 0 || state.step == cfg.training.steps || stop) {
      work_clock.reset();
      save_run_checkpoint(cfg, state, model, optimizer, *comm);
      eta.add(RunEta::kCheckpoint, work_clock.seconds());
    }
    if (stop) {
      spdlog::warn("stop requested: stopped after step {}", step);
      summary.interrupted = true;
      break;
    }
  }

  // ---- the end: final evaluation and summary ----
  const double val = evaluate(model, acts, val_data, val_batches, B, T, *comm);
  if (summary.first_val_loss == 0) summary.first_val_loss = val;
  summary.last_val_loss = val;
  record({{"type", "eval"}, {"step", summary.steps_done}, {"val_loss", val}});
  if (rank0) {
    const std::string text = sample_text(sampler, tokenizer, cfg, summary.steps_done);
    record({{"type", "sample"}, {"step", summary.steps_done}, {"text", text}});
    spdlog::info("final sample:\n{}", text);
  }
  spdlog::info("done: step {} after {} this session ({} skipped in all); train loss {:.4f}; val loss {:.4f} -> "
               "{:.4f}; metrics in {}", summary.steps_done, format_duration(run_clock.seconds()),
               summary.skipped_steps, summary.last_train_loss, summary.first_val_loss, summary.last_val_loss,
               (run_dir / "metrics.jsonl").string());
  model.free_activations(acts);
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  return summary;
}

}  // namespace sp
