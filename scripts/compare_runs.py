#!/usr/bin/env python3
"""Compare training runs as the paper's tables do, and plot their loss curves.

    python3 scripts/compare_runs.py runs/softmax runs/softpick [--analysis a.json b.json] [--out-dir figs]

Prints one row per run: final train loss, final validation loss, and from the analysis the sink rate,
kurtosis, the smallest, largest and largest absolute hidden activation and the attention sparsity
(docs/analysis.md). The analysis of a run is,
in this order: its --analysis file (one per run, in the same order; "-" for none), the newest
RUN/analysis/step_*.json that `softpick analyze RUN` writes, or the newest "analysis" record of its
metrics.jsonl. Missing values print as "-".

Writes to --out-dir (default: the current directory):
  loss.png      training loss (solid) and validation loss (markers) against step, every run
  analysis.png  sink rate, kurtosis, largest |activation| and sparsity against step, from the "analysis"
                records of metrics.jsonl (only when some run has them)
  summary.png   the table's sink rate, kurtosis, largest |activation| and sparsity as bars, one per run
                (only when some run has an analysis)
"""
import argparse
import json
import sys
from pathlib import Path

from plotting import load_json, newest_analysis_file, pyplot, save_figure

ANALYSIS_KEYS = [("sink_rate", "sink rate"), ("kurtosis", "kurtosis"),
                 ("max_abs_activation", "largest |activation|"), ("sparsity_zero", "exact zeros")]


def read_metrics(run):
    """Records of RUN/metrics.jsonl by type: {"train": [...], "eval": [...], "analysis": [...]}."""
    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        sys.exit(f"{run}: no metrics.jsonl; is it a run directory (training.run_dir)?")
    out = {"train": [], "eval": [], "analysis": []}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            # a run killed mid-write can leave a partial last line; anything else is worth a warning too
            print(f"warning: {path}:{n}: not JSON, skipped", file=sys.stderr)
            continue
        if rec.get("type") in out:
            out[rec["type"]].append(rec)
    return out


def run_label(run):
    cfg_path = Path(run) / "config.json"
    attention = "?"
    if cfg_path.is_file():
        model = load_json(cfg_path).get("model", {})
        attention = (model.get("attention", "?") + (" + SSMax" if model.get("ssmax") else "")
                     + (" + gate" if model.get("attention_gate") else ""))
    return f"{Path(run).name} ({attention})"


def fmt(x, kind):
    if x is None:
        return "-"
    if kind == "percent":
        return f"{100 * x:.2f}%"
    if kind == "loss":
        return f"{x:.4f}"
    return f"{x:.4g}"


def smooth(values, window):
    if window <= 1:
        return values
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v - (values[i - window] if i >= window else 0.0)
        out.append(acc / min(i + 1, window))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR")
    ap.add_argument("--analysis", nargs="+", metavar="JSON", help='one analysis JSON per run ("-" for none)')
    ap.add_argument("--labels", nargs="+", help="one name per run (default: directory and attention)")
    ap.add_argument("--out-dir", default=".", help="where the PNGs go (default: the current directory)")
    ap.add_argument("--tail", type=int, default=1, help="final train loss = mean of the last N steps (default 1)")
    ap.add_argument("--smooth", type=int, default=1, help="moving-average window for the train-loss curves")
    args = ap.parse_args(argv)
    for flag, given in (("--analysis", args.analysis), ("--labels", args.labels)):
        if given and len(given) != len(args.runs):
            ap.error(f"{flag}: {len(given)} values for {len(args.runs)} runs")
    if args.tail < 1 or args.smooth < 1:
        ap.error("--tail and --smooth must be at least 1")

    rows, metrics, analyses = [], [], []
    for i, run in enumerate(args.runs):
        m = read_metrics(run)
        metrics.append(m)
        analysis, source = None, "-"
        if args.analysis and args.analysis[i] != "-":
            analysis, source = load_json(args.analysis[i]), args.analysis[i]
        elif newest_analysis_file(run):
            source = str(newest_analysis_file(run))
            analysis = load_json(source)
        elif m["analysis"]:
            analysis, source = m["analysis"][-1], f"{run}/metrics.jsonl (step {m['analysis'][-1].get('step')})"
        losses = [r["loss"] for r in m["train"] if r.get("loss") is not None]
        tail = losses[-args.tail:]
        a = analysis or {}
        analyses.append(a)
        rows.append({
            "run": args.labels[i] if args.labels else run_label(run),
            "steps": str(m["train"][-1]["step"] + 1) if m["train"] else "-",
            "train loss": fmt(sum(tail) / len(tail) if tail else None, "loss"),
            "val loss": fmt(m["eval"][-1].get("val_loss") if m["eval"] else None, "loss"),
            "sink rate": fmt(a.get("sink_rate"), "percent"),
            "kurtosis": fmt(a.get("kurtosis"), "number"),
            "min act": fmt(a.get("min_activation"), "number"),
            "max act": fmt(a.get("max_activation"), "number"),
            "max |act|": fmt(a.get("max_abs_activation"), "number"),
            "sparsity": fmt(a.get("sparsity_zero"), "percent"),
            "analysis": source,
        })

    cols = list(rows[0].keys())
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) for c in cols))

    plt = pyplot()

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7.0, 4.4))
    for row, m in zip(rows, metrics):
        train = [(r["step"], r["loss"]) for r in m["train"] if r.get("loss") is not None]
        if train:
            line, = ax.plot([s for s, _ in train], smooth([l for _, l in train], args.smooth), label=row["run"])
            color = line.get_color()
        else:
            color = None
        evals = [(r["step"], r["val_loss"]) for r in m["eval"] if r.get("val_loss") is not None]
        if evals:
            ax.plot([s for s, _ in evals], [v for _, v in evals], "o--", color=color, markersize=4,
                    label=f"{row['run']} val")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    save_figure(fig, out_dir / "loss.png")

    if any(m["analysis"] for m in metrics):
        fig, axes = plt.subplots(2, 2, figsize=(9.0, 6.4))
        for ax, (key, title) in zip(axes.flat, ANALYSIS_KEYS):
            for row, m in zip(rows, metrics):
                pts = [(r["step"], r[key]) for r in m["analysis"] if r.get(key) is not None and "step" in r]
                if pts:
                    ax.plot([s for s, _ in pts], [v for _, v in pts], marker="o", markersize=3, label=row["run"])
            ax.set_title(title)
            ax.set_xlabel("step")
            ax.grid(True, alpha=0.3)
            if key in ("kurtosis", "max_abs_activation") and ax.has_data():
                ax.set_yscale("log")
        axes.flat[0].legend(fontsize="small")
        fig.tight_layout()
        save_figure(fig, out_dir / "analysis.png")

    if any(analyses):
        fig, axes = plt.subplots(1, 4, figsize=(3.0 * 4, 3.6))
        names = [row["run"] for row in rows]
        for ax, (key, title) in zip(axes.flat, ANALYSIS_KEYS):
            values = [a.get(key) if a.get(key) is not None else 0.0 for a in analyses]
            scale = 100.0 if key in ("sink_rate", "sparsity_zero") else 1.0
            heights = [scale * v for v in values]
            ax.bar(range(len(values)), heights, color=[f"C{i % 10}" for i in range(len(values))])
            ax.set_ylim(0, 1.15 * max(heights) if max(heights) > 0 else 1.0)  # all zero: an empty panel from 0
            ax.set_xticks(range(len(values)))
            ax.set_xticklabels(names, rotation=45, ha="right", fontsize="small")
            ax.set_title(title + (" (%)" if scale == 100.0 else ""))
            ax.grid(True, axis="y", alpha=0.3)
        fig.tight_layout()
        save_figure(fig, out_dir / "summary.png")


if __name__ == "__main__":
    main()
