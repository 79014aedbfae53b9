#!/usr/bin/env python3
"""The quantization study's table and plot from the `softpick eval --json` files of scripts/quant_study.sh.

Each file is EVAL_DIR/<model>-<row>.json: <row> is "full" (full precision), "act-<kind>" (8-bit activations
on full-precision weights) or <method>-<bits> (a `softpick quantize` checkpoint). Prints the table (rows
method x bits, per model the validation perplexity and its change from the model's full precision, and
each task's accuracy when the evaluation had tasks), and writes table.md, table.json and degradation.png
(perplexity relative to full precision against bits, one line per method and model) to --out-dir.

Usage: scripts/quant_table.py EVAL_DIR --out-dir DIR
"""
import argparse
import json
import math
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plotting import load_json, pyplot, save_figure  # noqa: E402

METHODS = ["rtn", "hqq", "gptq", "nf4", "fp4", "int8"]
CURVES = ["rtn", "hqq", "gptq"]  # the methods that run at several bit widths


def task_score(t):
    """acc_norm, else acc, else the first number a task reports."""
    for k in ("acc_norm", "acc"):
        if isinstance(t.get(k), (int, float)):
            return k, t[k]
    for k, v in t.items():
        if isinstance(v, (int, float)) and k not in ("examples", "seconds") and not k.endswith("_stderr"):
            return k, v
    return None, None


def read(eval_dir):
    """{model: {row: eval json}} and the rows in table order."""
    results = {}
    for f in sorted(Path(eval_dir).glob("*.json")):
        m = re.fullmatch(r"(.+?)-(full|act-[a-z0-9]+|[a-z0-9]+-[2-8])", f.stem)
        if not m:
            sys.exit(f"{f}: not named <model>-<row>.json as scripts/quant_study.sh names its evaluations")
        j = load_json(f)
        if "val" not in j:
            sys.exit(f"{f}: no validation result (evaluate with --val)")
        results.setdefault(m.group(1), {})[m.group(2)] = j
    if not results:
        sys.exit(f"{eval_dir}: no evaluation files")
    rows = sorted({r for per in results.values() for r in per}, key=row_order)
    return results, rows


def row_order(row):
    if row == "full":
        return (0, 0, 0)
    if row.startswith("act-"):
        return (2, 0, row)
    method, bits = row.rsplit("-", 1)
    return (1, METHODS.index(method) if method in METHODS else 99, -int(bits))


def row_label(row):
    if row == "full":
        return "full precision", "32"
    if row.startswith("act-"):
        return f"activations {row[4:]} (W32A8)", "32/8"
    return tuple(row.rsplit("-", 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("eval_dir")
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args()
    results, rows = read(args.eval_dir)
    models = sorted(results, key=lambda m: (m != "softmax", m))
    tasks = sorted({t for per in results.values() for j in per.values() for t in j.get("tasks", {})})
    for m in models:
        if "full" not in results[m]:
            sys.exit(f"{args.eval_dir}: no {m}-full.json, the full-precision evaluation the changes are relative to")

    header = ["method", "bits"]
    for m in models:
        header += [f"{m} ppl", f"{m} Δppl"] + [f"{m} {t}" for t in tasks]
    table, records = [], []
    for row in rows:
        method, bits = row_label(row)
        line = [method, bits]
        rec = {"row": row, "method": method, "bits": bits}
        for m in models:
            j = results[m].get(row)
            base = results[m]["full"]["val"]["perplexity"]
            if j is None:
                line += ["-", "-"] + ["-"] * len(tasks)
                continue
            ppl = j["val"]["perplexity"]
            line += [f"{ppl:.3f}", "-" if row == "full" else f"{100 * (ppl / base - 1):+.2f}%"]
            rec[m] = {"perplexity": ppl, "loss": j["val"]["loss"], "relative": ppl / base,
                      "activations": j.get("activations"), "quantization": j.get("quantization")}
            for t in tasks:
                name, v = task_score(j.get("tasks", {}).get(t, {}))
                line.append("-" if v is None else f"{v:.4f}")
                if v is not None:
                    rec[m].setdefault("tasks", {})[t] = {name: v}
        table.append(line)
        records.append(rec)

    widths = [max(len(str(x)) for x in col) for col in zip(header, *table)]
    md = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
          "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    md += ["| " + " | ".join(str(x).ljust(w) for x, w in zip(line, widths)) + " |" for line in table]
    text = "\n".join(md)
    print(text)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text + "\n")
    (out / "table.json").write_text(json.dumps(records, indent=2) + "\n")
    print(f"wrote {out / 'table.md'} and {out / 'table.json'}")

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = dict(zip(METHODS, ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]))
    styles = {m: s for m, s in zip(models, ["-", "--", ":", "-."])}
    for m in models:
        for method in METHODS:
            pts = sorted((int(r.rsplit("-", 1)[1]),
                          results[m][r]["val"]["perplexity"] / results[m]["full"]["val"]["perplexity"])
                         for r in results[m] if r != "full" and not r.startswith("act-") and r.rsplit("-", 1)[0] == method)
            if not pts:
                continue
            xs, ys = zip(*pts)
            kw = dict(color=colours[method], label=f"{method} {m}")
            if method in CURVES and len(pts) > 1:
                ax.plot(xs, ys, styles[m], marker="o", **kw)
            else:
                ax.plot(xs, ys, marker="s" if m == models[0] else "^", linestyle="none", **kw)
    ax.set_yscale("log")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xlabel("weight bits")
    ax.set_ylabel("validation perplexity / full precision")
    ax.set_xticks([2, 3, 4, 8])
    ax.set_title("Degradation under weight-only quantization")
    ax.legend(fontsize=7, ncol=2)
    save_figure(fig, out / "degradation.png")
    if any(not math.isfinite(r[m]["perplexity"]) for r in records for m in models if m in r):
        print("note: some perplexities are not finite (the quantized model diverged)")


if __name__ == "__main__":
    main()
