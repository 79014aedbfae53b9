#!/usr/bin/env python3
"""The largest |hidden activation| per layer for several runs, as in the right of the paper's Figure 1.

    python3 scripts/plot_activations.py runs/softmax runs/softpick --out activations.png
    python3 scripts/plot_activations.py a.json b.json --labels softmax softpick --out activations.png

Each argument is an analysis JSON written by `softpick analyze`, or a run directory: then the newest
RUN/analysis/step_*.json is used (the default place `softpick analyze RUN` writes to). Layer 0 is the
embedding output, layer l the output of block l - 1 (the field max_abs_activation_per_layer,
docs/analysis.md).
"""
import argparse
import json
import re
import sys
from pathlib import Path


def find_analysis(arg):
    """(path, parsed JSON) of an analysis file, or of the newest one of a run directory."""
    p = Path(arg)
    if p.is_dir():
        def step(f):
            m = re.search(r"(\d+)", f.stem)
            return int(m.group(1)) if m else -1
        found = sorted((p / "analysis").glob("*.json"), key=step)
        if not found:
            sys.exit(f"{arg}: no analysis JSON in {p / 'analysis'}; run `softpick analyze {arg}` first")
        p = found[-1]
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"{p}: cannot read it as JSON ({e})")
    if "max_abs_activation_per_layer" not in data:
        sys.exit(f"{p}: no max_abs_activation_per_layer; is it the output of `softpick analyze`?")
    return p, data


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", metavar="RUN_OR_JSON")
    ap.add_argument("--labels", nargs="+", help="one legend label per input (default: attention and run)")
    ap.add_argument("--out", required=True, help="output PNG")
    ap.add_argument("--linear", action="store_true", help="linear y axis (default logarithmic)")
    args = ap.parse_args(argv)
    if args.labels and len(args.labels) != len(args.inputs):
        ap.error(f"--labels: {len(args.labels)} labels for {len(args.inputs)} inputs")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, arg in enumerate(args.inputs):
        path, data = find_analysis(arg)
        values = data["max_abs_activation_per_layer"]
        run = Path(arg).name if Path(arg).is_dir() else path.stem
        label = args.labels[i] if args.labels else f"{data.get('attention', '?')} ({run})"
        ax.plot(range(len(values)), values, marker="o", label=label)
        print(f"{label}: largest |activation| {max(values):.4g} (from {path})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer (0 = embedding output, l = output of block l - 1)")
    ax.set_ylabel("largest |hidden activation|")
    if not args.linear:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
