"""What the plotting scripts share: a headless matplotlib, one way to write a figure, and finding the
analysis JSON of a run (`softpick analyze` writes RUN/analysis/step_N.json)."""
import json
import re
import sys
from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    try:
        import matplotlib
    except ImportError:
        sys.exit("matplotlib is missing: pip install matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    print(f"wrote {path}")


def load_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"{path}: cannot read it as JSON ({e})")


def newest_analysis_file(run):
    """The analysis JSON of a run directory with the highest step, or None."""
    def step(f):
        m = re.search(r"(\d+)", f.stem)
        return int(m.group(1)) if m else -1
    found = sorted((Path(run) / "analysis").glob("*.json"), key=step)
    return found[-1] if found else None
