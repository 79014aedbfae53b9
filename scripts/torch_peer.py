#!/usr/bin/env python3
"""The PyTorch peer of `softpick bench --device=cuda`, run in the same session on the same GPU.

Prints the figures that softpick's benchmark prints, measured the same way, for PyTorch:

  * the attention table: torch.nn.functional.scaled_dot_product_attention on its flash backend (softmax,
    causal) and a naive PyTorch softpick (scores materialised, the normaliser of docs/attention.md), forward
    and backward separately, at the same shapes (B = 1, the config's heads, head dims 64 and 128), FLOP/s in
    the FlashAttention convention (forward 4 B T^2 H D / 2, backward 2.5x forward);
  * the training step of the config's Llama (written here from the config: RMSNorm, RoPE, SwiGLU, SDPA
    attention, untied LM head as the presets have), bf16 autocast over fp32 weights with fused AdamW (the
    precision policy softpick uses: bf16 compute, fp32 master), eager and torch.compile: ms per step,
    tokens/s and MFU with softpick's FLOP count (6 x matmul parameters + 12 L H D T per token) against the
    dense bf16 peak given by --peak-tflops.

With --softpick-bench FILE (the output of `softpick bench --device=cuda`) it also prints softpick / PyTorch
ratios for the rows both measured. PyTorch is not a dependency of the project: this script runs where it is
installed (GPU machines) and says so where it is not.
"""
import argparse
import json
import math
import re
import sys


def parse_list(text):
    return [int(x) for x in text.split(",") if x]


def best_ms(torch, fn, reps):
    """Best of `reps` timings of fn() in ms (CUDA events), after one warm-up call."""
    fn()
    torch.cuda.synchronize()
    best = math.inf
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end))
    return best


def flash_context(torch):
    """A context manager that restricts SDPA to its flash backend (the API moved in PyTorch 2.3)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        return sdpa_kernel(SDPBackend.FLASH_ATTENTION)
    except ImportError:
        return torch.backends.cuda.sdp_kernel(enable_flash=True, enable_math=False, enable_mem_efficient=False)


def softpick_naive(torch, q, k, v, eps):
    """Causal softpick with the (B, H, T, T) scores materialised: relu(e^(s-m) - e^-m) / (sum |e^(s-m) - e^-m|
    + eps) over the visible keys, m = max(0, row max), in fp32 after a bf16 Q K^T."""
    T, D = q.shape[-2], q.shape[-1]
    visible = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    s = (q @ k.transpose(-1, -2)).float() / math.sqrt(D)
    s = s.masked_fill(~visible, float("-inf"))
    m = s.amax(-1, keepdim=True).clamp_min(0.0)
    x = torch.exp(s - m) - torch.exp(-m)
    den = x.abs().masked_fill(~visible, 0.0).sum(-1, keepdim=True) + eps
    p = torch.relu(x) / den
    return p.to(v.dtype) @ v


def attention_table(torch, cfg, args):
    F = torch.nn.functional
    H = cfg["num_heads"]
    Hkv = cfg.get("num_kv_heads") or H
    rows = []
    print(f"\nPyTorch {torch.__version__} attention: B=1, H={H}, Hkv={Hkv}, causal, bf16; best of {args.reps}")
    print(f"{'T':<6} {'D':<4} {'impl':<18} {'fwd ms':>10} {'bwd ms':>10} {'fwd TF/s':>10} {'bwd TF/s':>10}")
    for D in parse_list(args.attention_D):
        for T in parse_list(args.attention_T):
            flop = 4.0 * T * T * H * D / 2.0
            for impl in ("sdpa-flash-softmax", "naive-softpick"):
                if impl == "naive-softpick" and T > args.naive_max_T:
                    continue
                gen = torch.Generator(device="cuda").manual_seed(3)
                mk = lambda h: torch.randn(1, h, T, D, device="cuda", dtype=torch.bfloat16, generator=gen).requires_grad_()
                q, k, v = mk(H), mk(Hkv), mk(Hkv)
                dout = torch.randn(1, H, T, D, device="cuda", dtype=torch.bfloat16, generator=gen)
                kk, vv = (k, v) if Hkv == H else (k.repeat_interleave(H // Hkv, 1), v.repeat_interleave(H // Hkv, 1))
                if impl == "sdpa-flash-softmax":
                    def forward():
                        with flash_context(torch):
                            return F.scaled_dot_product_attention(q, kk, vv, is_causal=True)
                else:
                    def forward():
                        return softpick_naive(torch, q, kk, vv, cfg.get("softpick_eps", 1e-6))
                try:
                    fwd = best_ms(torch, forward, args.reps)
                    out = forward()
                    bwd = best_ms(torch, lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True), args.reps)
                except torch.cuda.OutOfMemoryError:
                    print(f"{T:<6} {D:<4} {impl:<18} out of memory")
                    torch.cuda.empty_cache()
                    continue
                del out
                torch.cuda.empty_cache()
                rows.append({"T": T, "D": D, "impl": impl, "fwd_ms": fwd, "bwd_ms": bwd})
                print(f"{T:<6} {D:<4} {impl:<18} {fwd:10.3f} {bwd:10.3f} {flop / (fwd * 1e9):10.1f} "
                      f"{2.5 * flop / (bwd * 1e9):10.1f}")
    return rows


def llama(torch, cfg):
    nn, F = torch.nn, torch.nn.functional
    C, L, H = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_heads"]
    Hkv, Fd, V = cfg.get("num_kv_heads") or H, cfg["intermediate_size"], cfg["vocab_size"]
    D, eps, theta = C // H, cfg.get("norm_eps", 1e-6), cfg.get("rope_theta", 10000.0)

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(C))

        def forward(self, x):
            xf = x.float()
            return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * self.weight.to(x.dtype)

    def rope(x, cos, sin):  # rotate-half, (B, h, T, D)
        x1, x2 = x[..., : D // 2], x[..., D // 2:]
        return x * cos + torch.cat((-x2, x1), -1) * sin

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = RMSNorm(), RMSNorm()
            self.q = nn.Linear(C, H * D, bias=False)
            self.k = nn.Linear(C, Hkv * D, bias=False)
            self.v = nn.Linear(C, Hkv * D, bias=False)
            self.o = nn.Linear(H * D, C, bias=False)
            self.gate = nn.Linear(C, Fd, bias=False)
            self.up = nn.Linear(C, Fd, bias=False)
            self.down = nn.Linear(Fd, C, bias=False)

        def forward(self, x, cos, sin):
            B, T, _ = x.shape
            h = self.ln1(x)
            q = rope(self.q(h).view(B, T, H, D).transpose(1, 2), cos, sin)
            k = rope(self.k(h).view(B, T, Hkv, D).transpose(1, 2), cos, sin)
            v = self.v(h).view(B, T, Hkv, D).transpose(1, 2)
            if Hkv != H:
                k, v = k.repeat_interleave(H // Hkv, 1), v.repeat_interleave(H // Hkv, 1)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.o(a.transpose(1, 2).reshape(B, T, H * D))
            h = self.ln2(x)
            return x + self.down(F.silu(self.gate(h)) * self.up(h))

    class Llama(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, C)
            self.blocks = nn.ModuleList(Block() for _ in range(L))
            self.norm = RMSNorm()
            self.lm_head = nn.Linear(C, V, bias=False)

        def forward(self, tokens, targets):
            T = tokens.shape[1]
            inv = 1.0 / theta ** (torch.arange(0, D, 2, device=tokens.device, dtype=torch.float32) / D)
            ang = torch.outer(torch.arange(T, device=tokens.device, dtype=torch.float32), inv)
            ang = torch.cat((ang, ang), -1)
            cos, sin = ang.cos().to(torch.bfloat16), ang.sin().to(torch.bfloat16)
            x = self.embed(tokens)
            for b in self.blocks:
                x = b(x, cos, sin)
            logits = self.lm_head(self.norm(x))
            return F.cross_entropy(logits.float().view(-1, V), targets.view(-1))

    matmul_params = L * (C * H * D + 2 * C * Hkv * D + H * D * C + 3 * C * Fd) + V * C
    flops_per_token_attn = 12.0 * L * H * D  # times T
    return Llama, matmul_params, flops_per_token_attn


def training_table(torch, cfg, args):
    Llama, matmul_params, attn = llama(torch, cfg)
    B, T = args.batch_size, args.seq_len
    flops_per_token = 6.0 * matmul_params + attn * T
    rows = []
    print(f"\nPyTorch training step: B={B}, T={T}, SDPA flash (softmax), bf16 autocast over fp32 weights, fused AdamW;"
          f"\nMFU = tokens/s x {flops_per_token:.4g} FLOPs/token / {args.peak_tflops} TFLOP/s")
    print(f"{'mode':<10} {'step ms':>10} {'tokens/s':>12} {'MFU':>8} {'mem GiB':>8}")
    for mode in ("eager", "compile"):
        torch.manual_seed(0)
        model = Llama().cuda()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
        run = torch.compile(model) if mode == "compile" else model
        gen = torch.Generator(device="cuda").manual_seed(1)
        tokens = torch.randint(0, cfg["vocab_size"], (B, T), device="cuda", generator=gen)
        targets = torch.randint(0, cfg["vocab_size"], (B, T), device="cuda", generator=gen)

        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = run(tokens, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        try:
            step()  # a compile's first call builds the graphs
            torch.cuda.reset_peak_memory_stats()
            ms = best_ms(torch, step, args.steps)
        except torch.cuda.OutOfMemoryError:
            print(f"{mode:<10} out of memory")
        else:
            tok_s = B * T / (ms / 1e3)
            mfu = tok_s * flops_per_token / (args.peak_tflops * 1e12)
            mem = torch.cuda.max_memory_allocated() / 2**30
            rows.append({"mode": mode, "step_ms": ms, "tokens_per_s": tok_s, "mfu": mfu, "mem_gib": mem})
            print(f"{mode:<10} {ms:10.1f} {tok_s:12.0f} {100 * mfu:7.1f}% {mem:8.2f}")
        del model, opt, run
        torch.cuda.empty_cache()
    return rows


def softpick_figures(path):
    """The attention rows and the first training row of a `softpick bench` output."""
    attn, train = {}, None
    for line in open(path, errors="replace"):
        m = re.match(r"^(\d+)\s+(\d+)\s+(softmax|softpick)\s+flash\s+([\d.]+)\s+([\d.]+)", line)
        if m:
            attn[(int(m[1]), int(m[2]), m[3])] = (float(m[4]), float(m[5]))
        m = re.match(r"^as configured .*?\)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)", line)
        if m and train is None:
            train = {"step_ms": float(m[4]), "tokens_per_s": float(m[5])}
    return attn, train


def ratios(attn_rows, train_rows, path):
    attn, train = softpick_figures(path)
    print(f"\nsoftpick.cpp / PyTorch (from {path}; > 1 means softpick.cpp is faster)")
    for r in attn_rows:
        ours = attn.get((r["T"], r["D"], "softmax" if r["impl"].endswith("softmax") else "softpick"))
        if ours:
            print(f"  T {r['T']:<6} D {r['D']:<4} {'softmax vs SDPA flash' if r['impl'].endswith('softmax') else 'softpick vs naive softpick':<28}"
                  f" fwd {r['fwd_ms'] / ours[0]:6.2f}x  bwd {r['bwd_ms'] / ours[1]:6.2f}x")
    for r in train_rows:
        if train:
            print(f"  training step vs PyTorch {r['mode']:<8} tokens/s {train['tokens_per_s'] / r['tokens_per_s']:6.2f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="a softpick config (its model section gives the shapes)")
    ap.add_argument("--only", choices=["attention", "train"])
    ap.add_argument("--attention-T", default="1024,4096,16384")
    ap.add_argument("--attention-D", default="64,128")
    ap.add_argument("--naive-max-T", type=int, default=8192, help="the naive softpick materialises (H, T, T)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=3, help="timed training steps (best of)")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100/H200 SXM: 989)")
    ap.add_argument("--softpick-bench", action="append", default=[],
                    help="output of `softpick bench --device=cuda` to compare with (repeatable)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("torch_peer.py: PyTorch is not installed here; the peer runs on GPU machines that have it")
    if not torch.cuda.is_available():
        sys.exit("torch_peer.py: PyTorch sees no CUDA device")
    cfg = json.load(open(args.config))["model"]
    print(f"device: {torch.cuda.get_device_name()}, PyTorch {torch.__version__}, CUDA {torch.version.cuda}")
    attn_rows = attention_table(torch, cfg, args) if args.only != "train" else []
    train_rows = training_table(torch, cfg, args) if args.only != "attention" else []
    for path in args.softpick_bench:
        ratios(attn_rows, train_rows, path)
    if args.json:
        json.dump({"attention": attn_rows, "training": train_rows}, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
