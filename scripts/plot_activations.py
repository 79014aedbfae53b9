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
import sys
from pathlib import Path

from plotting import load_json, newest_analysis_file, pyplot, save_figure


def find_analysis(arg):
    """(path, parsed JSON) of an analysis file, or of the newest one of a run directory."""
    p = Path(arg)
    if p.is_dir():
        p = newest_analysis_file(arg)
        if p is None:
            sys.exit(f"{arg}: no analysis JSON in {Path(arg) / 'analysis'}; run `softpick analyze {arg}` first")
    data = load_json(p)
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

    plt = pyplot()
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
    save_figure(fig, args.out)


if __name__ == "__main__":
    main()
