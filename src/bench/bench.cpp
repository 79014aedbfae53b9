#include "bench/bench.h"

#include "backend/backend.h"
#include "core/check.h"
#include "core/rng.h"
#include "cpu/attention.h"
#include "model/model.h"
#include "train/optimizer.h"
#include "train/perf.h"

#include <sys/resource.h>

#include <omp.h>

#include <algorithm>
#include <cstdio>

namespace sp {

namespace {

double peak_rss_mib() {
  struct rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

// Times one training configuration: forward, loss+backward, optimizer; returns nothing, prints a table row.
void bench_training(const std::string& label, const Config& cfg, int64_t steps, Backend& backend) {
  const int64_t B = cfg.training.batch_size, T = cfg.training.seq_len;
  const Derived d = derive(cfg);
  Model model(cfg.model, backend);
  AdamW opt(cfg.optimizer, model);
  opt.set_master_weights(model.initial_weights(uint64_t(cfg.training.seed)));
  Activations acts = model.make_activations(B, T, recompute_from_name(cfg.training.activation_checkpointing));
  std::vector<int32_t> tokens(size_t(B * T)), targets(size_t(B * T));
  Rng rng(1);
  for (auto& t : tokens) t = int32_t(rng.below(uint64_t(cfg.model.vocab_size)));
  for (auto& t : targets) t = int32_t(rng.below(uint64_t(cfg.model.vocab_size)));
  double t_fwd = 0, t_bwd = 0, t_opt = 0;
  for (int64_t s = 0; s <= steps; ++s) {  // step 0 warms up
    // every phase's clock is read after a sync: a backend may still be running what was enqueued
    Stopwatch sw;
    model.zero_grads();
    model.forward(acts, tokens, B, T);
    backend.sync();
    const double f = sw.seconds();
    model.loss(acts, targets, true, 1.0 / double(B * T));
    model.backward(acts);
    model.take_loss(acts);  // the step's one read of the loss, as in training
    const double b = sw.seconds();
    opt.reduce_gradients();  // one rank: the norm's sum of squares
    opt.step(1e-4, s + 1, clip_scale(opt.grad_norm(), 1.0));
    backend.sync();
    const double o = sw.seconds();
    if (s == 0) continue;
    t_fwd += f;
    t_bwd += b - f;
    t_opt += o - b;
  }
  const double step_s = (t_fwd + t_bwd + t_opt) / double(steps);
  const double tok_s = double(B * T) / step_s;
  // the same with the attention term halved for the causal mask: the work actually done
  const double causal_flops = d.flops_per_token - 6.0 * double(cfg.model.num_hidden_layers * cfg.model.num_heads *
                                                                d.head_dim * T);
  const double peak = backend.peak_flops();
  const double mem_gib = double(backend.memory_use().in_use) / double(1 << 30);  // weights, optimizer, activations
  std::printf("%-28s %8.1f %8.1f %8.1f %9.1f %9.0f %8.1f %7s %7s %8.2f\n", label.c_str(), 1e3 * t_fwd / double(steps),
              1e3 * t_bwd / double(steps), 1e3 * t_opt / double(steps), 1e3 * step_s, tok_s,
              tok_s * d.flops_per_token / 1e9, format_mfu(mfu(tok_s * d.flops_per_token, peak)).c_str(),
              format_mfu(mfu(tok_s * causal_flops, peak)).c_str(), mem_gib);
  model.free_activations(acts);
}

struct AttnTiming {
  double fwd_ms = 0, bwd_ms = 0;
};

// Times the flash attention forward and backward of `s` through the backend (best of `reps` after a
// warm-up), on random inputs in the backend's activation dtype; every clock is read after a sync.
AttnTiming time_attention(Backend& be, const AttentionShape& s, int reps) {
  const size_t nq = size_t(s.B * s.T * s.H * s.D), nkv = size_t(s.B * s.T * s.Hkv * s.D);
  const DType act = be.activation_dtype();
  std::vector<Buffer> owned;
  auto buffer = [&](size_t n, DType dt) { return owned.emplace_back(be.alloc(n, dt)); };
  Rng rng(3);
  auto random = [&](size_t n) {
    std::vector<float> host(n);
    for (auto& e : host) e = float(rng.normal());
    const Buffer b = buffer(n, act);
    be.upload(b, host);
    return b;
  };
  const Buffer q = random(nq), k = random(nkv), v = random(nkv), dout = random(nq);
  const Buffer out = buffer(nq, act), dq = buffer(nq, act), dk = buffer(nkv, act), dv = buffer(nkv, act);
  const Buffer lse = buffer(size_t(s.B * s.H * s.T), be.stat_dtype());
  AttnTiming t;
  for (int r = 0; r <= reps; ++r) {  // r = 0 warms up
    be.sync();
    Stopwatch sw;
    be.attention_forward(out, lse, q, k, v, Buffer{}, s);
    be.sync();
    const double f = sw.seconds();
    be.attention_backward(dq, dk, dv, q, k, v, out, dout, lse, s);
    be.sync();
    const double b = sw.seconds() - f;
    if (r == 0) continue;
    t.fwd_ms = r == 1 ? 1e3 * f : std::min(t.fwd_ms, 1e3 * f);
    t.bwd_ms = r == 1 ? 1e3 * b : std::min(t.bwd_ms, 1e3 * b);
  }
  for (Buffer b : owned) be.release(b);
  return t;
}

// The CPU's naive reference, which materialises the (B, H, T, T) attention maps: the peer of the CPU
// flash rows.
AttnTiming time_naive_attention(const AttentionShape& s) {
  const size_t nq = size_t(s.B * s.T * s.H * s.D), nkv = size_t(s.B * s.T * s.Hkv * s.D);
  std::vector<float> q(nq), k(nkv), v(nkv), out(nq), dout(nq), dq(nq), dk(nkv), dv(nkv);
  std::vector<float> probs(size_t(s.B * s.H) * size_t(s.T) * size_t(s.T));
  Rng rng(3);
  for (auto* x : {&q, &k, &v, &dout})
    for (auto& e : *x) e = float(rng.normal());
  Stopwatch sw;
  attention_naive_forward<float>(s, q.data(), k.data(), v.data(), nullptr, out.data(), probs.data());
  const double f = sw.seconds();
  attention_naive_backward<float>(s, q.data(), k.data(), v.data(), nullptr, probs.data(), dout.data(), dq.data(),
                                  dk.data(), dv.data(), nullptr);
  return {1e3 * f, 1e3 * (sw.seconds() - f)};
}

// `atomic`: the same device with training.attention_backward = atomic, whose backward is timed beside the
// deterministic one (null on the CPU, which has only the deterministic mode).
void bench_attention(const Config& cfg, const BenchOptions& opt, Backend& be, Backend* atomic, bool emulated) {
  const int64_t H = cfg.model.num_heads, Hkv = *cfg.model.num_kv_heads;
  const bool cpu = be.name().rfind("cpu", 0) == 0;
  std::vector<int64_t> Ts = opt.attention_T, Ds = opt.attention_D;
  if (Ts.empty()) Ts = emulated ? std::vector<int64_t>{64, 128}
                       : cpu    ? std::vector<int64_t>{256, 512, 1024, 2048, 4096}
                                : std::vector<int64_t>{512, 1024, 2048, 4096, 8192, 16384};
  if (Ds.empty()) Ds = {cfg.model.hidden_size / H};
  std::printf("\nattention alone on %s: B=1, H=%lld, Hkv=%lld, causal; FLOP/s in the FlashAttention convention\n"
              "(forward 4 B T^2 H D / 2, backward 2.5x forward); best of several runs; bwd is the deterministic\n"
              "backward (the default), atomic the backward that adds dq with fp32 atomics; peak RSS is the\n"
              "process's after the row%s\n",
              be.name().c_str(), (long long)H, (long long)Hkv,
              cpu ? " (flash rows run first, in increasing T, so they show what flash attention needs)" : "");
  std::printf("%-6s %-4s %-10s %-6s %10s %10s %10s %10s %10s %12s\n", "T", "D", "normaliser", "impl", "fwd ms",
              "bwd ms", "atomic ms", "fwd TF/s", "bwd TF/s", "peak RSS MiB");
  // flash first, in increasing T; the naive reference (CPU only) after
  for (bool naive : cpu ? std::vector<bool>{false, true} : std::vector<bool>{false})
    for (int64_t D : Ds)
      for (int64_t T : Ts) {
        if (naive && T > opt.naive_max_T) continue;
        // softmax and softpick alternate, best of several rounds, so machine noise hits both alike
        const int rounds = naive || emulated ? 1 : (T <= 1024 ? 5 : 3);
        AttnTiming best[2];
        double best_atomic[2] = {0, 0};  // ms of the atomic backward
        const Normaliser kinds[2] = {Normaliser::Softmax, Normaliser::Softpick};
        for (int r = 0; r < rounds; ++r)
          for (int i = 0; i < 2; ++i) {
            const AttentionShape s{1, T, H, Hkv, D, kinds[i], cfg.model.softpick_eps};
            const AttnTiming t = naive ? time_naive_attention(s) : time_attention(be, s, emulated ? 1 : 3);
            best[i].fwd_ms = r == 0 ? t.fwd_ms : std::min(best[i].fwd_ms, t.fwd_ms);
            best[i].bwd_ms = r == 0 ? t.bwd_ms : std::min(best[i].bwd_ms, t.bwd_ms);
            if (atomic && !naive) {
              const double a = time_attention(*atomic, s, emulated ? 1 : 3).bwd_ms;
              best_atomic[i] = r == 0 ? a : std::min(best_atomic[i], a);
            }
          }
        const double fwd_flop = 4.0 * double(T) * double(T) * double(H) * double(D) / 2.0;
        for (int i = 0; i < 2; ++i) {
          const AttnTiming& t = best[i];
          const std::string atomic_ms = best_atomic[i] > 0 ? fmt::format("{:.3f}", best_atomic[i]) : "-";
          std::printf("%-6lld %-4lld %-10s %-6s %10.3f %10.3f %10s %10.4f %10.4f %12.0f", (long long)T, (long long)D,
                      i == 0 ? "softmax" : "softpick", naive ? "naive" : "flash", t.fwd_ms, t.bwd_ms, atomic_ms.c_str(),
                      fwd_flop / (t.fwd_ms * 1e9), 2.5 * fwd_flop / (t.bwd_ms * 1e9), peak_rss_mib());
          if (i == 1)
            std::printf("   softpick/softmax fwd %.2fx, bwd %.2fx", t.fwd_ms / best[0].fwd_ms, t.bwd_ms / best[0].bwd_ms);
          if (best_atomic[i] > 0) std::printf("   atomic/deterministic bwd %.2fx", best_atomic[i] / t.bwd_ms);
          std::printf("\n");
          std::fflush(stdout);
        }
      }
}

}  // namespace

void run_bench(const Config& cfg, const BenchOptions& opt) {
  auto make = [&](bool deterministic) {
    return make_backend({cfg.training.device, cfg.training.threads ? int(*cfg.training.threads) : 0, 0, deterministic});
  };
  auto backend = make(cfg.training.attention_backward == "deterministic");  // the training step's
  // the CPU attention table's threads, whatever the backend
  if (cfg.training.threads) omp_set_num_threads(int(*cfg.training.threads));
  std::printf("machine: %d threads, backend %s; %s\n", omp_get_max_threads(), backend->name().c_str(),
              peak_summary(*backend).c_str());
  bool emulated = false;
#ifdef SOFTPICK_CUDA_EMU
  emulated = backend->name().find("cuda") != std::string::npos;
  if (emulated)
    std::printf("NOTE: this build runs the CUDA backend on the CUDA execution harness: the cuda times below are\n"
                "emulated on the CPU and say nothing about a GPU (docs/cuda_harness.md)\n");
#endif
  // attention first, while the process's peak RSS is still its own
  if (opt.attention) {  // both backward modes on a GPU, whatever the config says
    const bool cpu = backend->name().rfind("cpu", 0) == 0;
    auto deterministic = make(true);
    auto atomic = cpu ? nullptr : make(false);
    bench_attention(cfg, opt, *deterministic, atomic.get(), emulated);
  }
  if (opt.train) {
    std::printf("\ntraining step: B=%lld, T=%lld, attention %s, activation checkpointing %s, attention backward %s;\n"
                "GFLOP/s = tokens/s x FLOPs/token (6 N + 12 L H D T, recomputation not counted); memory: the\n"
                "backend's buffers in use\n",
                (long long)cfg.training.batch_size, (long long)cfg.training.seq_len, cfg.model.attention.c_str(),
                cfg.training.activation_checkpointing.c_str(), cfg.training.attention_backward.c_str());
    std::printf("('MFU' counts attention as 12 L H D T FLOPs per token, the PaLM convention, which does not halve\n"
                "for the causal mask; 'causal' counts only the work actually done, 6 L H D T)\n");
    std::printf("%-28s %8s %8s %8s %9s %9s %8s %7s %7s %8s\n", "model", "fwd ms", "loss+bwd", "opt ms", "step ms",
                "tokens/s", "GFLOP/s", "MFU", "causal", "mem GiB");
    bench_training(fmt::format("as configured ({} layers)", cfg.model.num_hidden_layers), cfg, opt.steps, *backend);
    // one block alone: the same layer shape with a 64-token vocabulary, so embedding and LM head are negligible
    Config block = cfg;
    block.model.num_hidden_layers = 1;
    block.model.vocab_size = 64;
    block.model.tie_word_embeddings = false;
    bench_training("one block (vocab 64)", block, opt.steps, *backend);
  }
}

}  // namespace sp
