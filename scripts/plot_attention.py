#!/usr/bin/env python3
"""Attention maps side by side, as in the left of the paper's Figure 1.

    python3 scripts/plot_attention.py softmax/attention_L3_H0.npy softpick/attention_L3_H0.npy \
        --titles softmax softpick --out attention.png

The maps are (T, T) float32 .npy files from `softpick analyze --dump-attention L:H --dump-dir DIR`
(docs/analysis.md). Entries above the diagonal (future keys) are left blank; exact zeros, which softpick
produces and softmax does not, are drawn in a colour of their own (--zero-color) so sparsity is visible.
"""
import argparse
import sys
from pathlib import Path

from plotting import pyplot, save_figure


def load_map(path):
    import numpy as np
    try:
        m = np.load(path)
    except (OSError, ValueError) as e:
        sys.exit(f"{path}: cannot read it as .npy ({e})")
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        sys.exit(f"{path}: expected a square (T, T) attention map, found shape {m.shape}")
    return m


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("maps", nargs="+", help="(T, T) .npy attention maps")
    ap.add_argument("--titles", nargs="+", help="one title per map (default: the file names)")
    ap.add_argument("--out", required=True, help="output PNG")
    ap.add_argument("--log", action="store_true", help="logarithmic colour scale (zeros stay blank-coloured)")
    ap.add_argument("--zero-color", default="white", help="colour of exact zeros (default white)")
    ap.add_argument("--cmap", default="viridis")
    args = ap.parse_args(argv)
    if args.titles and len(args.titles) != len(args.maps):
        ap.error(f"--titles: {len(args.titles)} titles for {len(args.maps)} maps")
    titles = args.titles or [Path(p).stem for p in args.maps]

    plt = pyplot()
    import matplotlib
    from matplotlib.colors import LogNorm, Normalize
    import numpy as np

    maps = [load_map(p) for p in args.maps]
    vmax = max(float(m.max()) for m in maps) or 1.0
    positive = [float(m[m > 0].min()) for m in maps if (m > 0).any()]
    norm = LogNorm(vmin=max(min(positive, default=1e-6), vmax * 1e-6), vmax=vmax) if args.log \
        else Normalize(vmin=0.0, vmax=vmax)
    cmap = matplotlib.colormaps[args.cmap].copy()
    cmap.set_bad(args.zero_color)  # masked cells: exact zeros and the future keys

    fig, axes = plt.subplots(1, len(maps), figsize=(4.4 * len(maps) + 1.0, 4.4), squeeze=False, layout="constrained")
    image = None
    for ax, m, title in zip(axes[0], maps, titles):
        T = m.shape[0]
        shown = np.ma.masked_where(m == 0, m)  # zeros (and the blank upper triangle) take the "bad" colour
        image = ax.imshow(shown, cmap=cmap, norm=norm, interpolation="nearest")
        lower = np.tril(np.ones((T, T), dtype=bool))
        zeros = float((m[lower] == 0).mean())
        ax.set_title(f"{title}\n{100 * zeros:.1f}% exact zeros")
        ax.set_xlabel("key position")
        ax.set_ylabel("query position")
    fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label="attention weight")
    save_figure(fig, args.out)


if __name__ == "__main__":
    main()
