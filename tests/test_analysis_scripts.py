#!/usr/bin/env python3
"""Tests of the analysis scripts (scripts/plot_attention.py, plot_activations.py, compare_runs.py).

    python3 tests/test_analysis_scripts.py [--softpick BUILD/softpick]

Without --softpick the scripts run on inputs made here (maps, analysis JSON, metrics.jsonl). With it, two
tiny runs (softmax and softpick) are trained and analysed first: the .npy maps `softpick analyze
--dump-attention` writes are loaded with numpy and checked, and the scripts run on the real outputs.
Needs numpy and matplotlib. The last line is "N passed, M failed".
"""
import argparse
import contextlib
import importlib.util
import io
import json
import random
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np

import testlib

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
sys.path.insert(0, str(SCRIPTS))  # the scripts import their shared module (plotting.py) as a sibling
TINY = REPO / "tests" / "configs" / "tiny.json"
SOFTPICK = None  # path of the softpick binary, from --softpick
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(*cmd, rc=0):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)
    if rc is not None and p.returncode != rc:
        raise AssertionError(f"{' '.join(map(str, cmd))}: exit {p.returncode}, expected {rc}\n"
                             f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


_modules = {}


def script(name, *args, rc=0):
    """Runs scripts/NAME's main() in this process (importing matplotlib once, not per call) and returns its
    exit code and output as a CompletedProcess would; sys.exit("message") counts as exit 1 on stderr."""
    if name not in _modules:
        spec = importlib.util.spec_from_file_location(name[:-3], SCRIPTS / name)
        _modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_modules[name])
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            _modules[name].main([str(a) for a in args])
        except SystemExit as e:
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
                code = 1
            else:
                code = e.code or 0
    p = subprocess.CompletedProcess([name, *args], code, out.getvalue(), err.getvalue())
    if rc is not None and code != rc:
        raise AssertionError(f"{name} {' '.join(map(str, args))}: exit {code}, expected {rc}\n"
                             f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


class Tmp:
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="softpick_scripts_")
        self.tmp = Path(self._tmp.name)

    def tearDown(self):
        self._tmp.cleanup()

    def assertPng(self, path):
        data = Path(path).read_bytes() if Path(path).is_file() else b""
        self.assertTrue(data.startswith(PNG_MAGIC), f"{path}: missing or not a PNG")
        self.assertGreater(len(data), 2000, f"{path}: suspiciously small")


def causal(T, rows):
    m = np.zeros((T, T), dtype=np.float32)
    for t in range(T):
        m[t, : t + 1] = rows(t)
    return m


def analysis_json(attention, layers, peak):
    act = [0.1 * peak ** (l / layers) for l in range(layers + 1)]
    return {"type": "analysis", "step": 100, "attention": attention, "sink_rate": 0.5, "kurtosis": 12.0,
            "max_abs_activation": max(act), "max_abs_activation_per_layer": act, "sparsity_zero": 0.25}


class SyntheticInputsTest(Tmp, unittest.TestCase):
    def test_command_lines(self):
        for name in ("plot_attention.py", "plot_activations.py", "compare_runs.py", "demo_summary.py"):
            p = run(sys.executable, SCRIPTS / name, "--help")
            self.assertIn("usage:", p.stdout)
            p = run(sys.executable, SCRIPTS / name, rc=2)  # inputs missing
            self.assertIn("the following arguments are required", p.stderr)

    def test_plot_attention(self):
        T = 24
        soft = causal(T, lambda t: np.full(t + 1, 1.0 / (t + 1)))
        pick = causal(T, lambda t: np.where(np.arange(t + 1) % 3 == 0, 1.0, 0.0) / max(1, (t // 3) + 1))
        np.save(self.tmp / "a.npy", soft)
        np.save(self.tmp / "b.npy", pick)
        out = self.tmp / "figs" / "attention.png"
        script("plot_attention.py", self.tmp / "a.npy", self.tmp / "b.npy", "--titles", "softmax", "softpick",
               "--out", out)
        self.assertPng(out)
        script("plot_attention.py", self.tmp / "b.npy", "--log", "--out", self.tmp / "log.png")
        self.assertPng(self.tmp / "log.png")

    def test_plot_attention_errors(self):
        np.save(self.tmp / "bad.npy", np.zeros((3, 4), dtype=np.float32))
        p = script("plot_attention.py", self.tmp / "bad.npy", "--out", self.tmp / "x.png", rc=1)
        self.assertIn("bad.npy: expected a square (T, T) attention map", p.stderr)
        np.save(self.tmp / "ok.npy", np.eye(4, dtype=np.float32))
        p = script("plot_attention.py", self.tmp / "ok.npy", "--titles", "a", "b", "--out", self.tmp / "x.png", rc=2)
        self.assertIn("--titles: 2 titles for 1 maps", p.stderr)
        self.assertFalse((self.tmp / "x.png").exists())

    def test_plot_activations(self):
        (self.tmp / "run_a" / "analysis").mkdir(parents=True)
        for step, peak in ((50, 10.0), (100, 1000.0)):  # the run directory's newest file is used
            (self.tmp / "run_a" / "analysis" / f"step_{step:08d}.json").write_text(
                json.dumps(analysis_json("softmax", 4, peak)))
        (self.tmp / "b.json").write_text(json.dumps(analysis_json("softpick", 4, 3.0)))
        out = self.tmp / "act.png"
        p = script("plot_activations.py", self.tmp / "run_a", self.tmp / "b.json", "--out", out)
        self.assertPng(out)
        self.assertIn("softmax (run_a): largest |activation| 100", p.stdout)  # 0.1 * 1000, from step 100
        p = script("plot_activations.py", self.tmp, "--out", self.tmp / "y.png", rc=1)
        self.assertIn("no analysis JSON", p.stderr)

    def test_compare_runs_with_analysis_records(self):
        run_dir = self.tmp / "run"
        run_dir.mkdir()
        (run_dir / "config.json").write_text(json.dumps({"model": {"attention": "softpick", "ssmax": True}}))
        lines = []
        for step in range(60):
            lines.append({"type": "train", "step": step, "loss": 5.0 - step * 0.05})
            if step % 20 == 0:
                lines.append({"type": "eval", "step": step, "val_loss": 5.1 - step * 0.05})
                lines.append({"type": "analysis", "step": step, "sink_rate": 0.0, "kurtosis": 3.0 + step,
                              "max_abs_activation": 1.0 + step, "sparsity_zero": 0.4})
        text = "\n".join(json.dumps(r) for r in lines) + '\n{"type": "train", "st'  # a torn last line
        (run_dir / "metrics.jsonl").write_text(text)
        bare = self.tmp / "bare"  # train records only: no eval, no analysis, no config
        bare.mkdir()
        (bare / "metrics.jsonl").write_text(json.dumps({"type": "train", "step": 0, "loss": 5.5}) + "\n")
        out = self.tmp / "figs"
        p = script("compare_runs.py", run_dir, bare, "--out-dir", out, "--tail", "10", "--smooth", "5")
        self.assertIn("not JSON, skipped", p.stderr)
        row = next(l for l in p.stdout.splitlines() if l.startswith("run (softpick + SSMax)"))
        self.assertEqual(row.split()[4:8], ["60", f"{sum(5.0 - s * 0.05 for s in range(50, 60)) / 10:.4f}",
                                            "3.1000", "0.00%"])
        self.assertIn("43", row)      # kurtosis of the newest analysis record (step 40)
        self.assertIn("40.00%", row)  # its sparsity
        bare_row = next(l for l in p.stdout.splitlines() if l.startswith("bare"))
        self.assertEqual(bare_row.split()[2:5], ["1", "5.5000", "-"])
        self.assertPng(out / "loss.png")
        self.assertPng(out / "analysis.png")
        self.assertPng(out / "summary.png")

    def test_demo_summary(self):
        def run_with(name, **fields):
            d = self.tmp / name
            (d / "analysis").mkdir(parents=True)
            a = {"type": "analysis", "attention": name.split("_")[0], "sequences": 16, "seq_len": 128,
                 "sink_rate": 0.0, "kurtosis": 10.0, "sparsity_zero": 0.0, "max_abs_activation": 50.0}
            a.update(fields)
            (d / "analysis" / "step_00000010.json").write_text(json.dumps({**a, "sink_rate": 0.9}))  # older
            (d / "analysis" / "step_00000100.json").write_text(json.dumps(a))
            return d
        sm = run_with("softmax_a", sink_rate=0.0117, kurtosis=20.0, max_abs_activation=130.0)
        sp = run_with("softpick_a", sparsity_zero=0.897, kurtosis=25.0, max_abs_activation=190.0)
        out = script("demo_summary.py", sm, sp).stdout
        line = lambda key: next(l for l in out.splitlines() if key in l)
        self.assertIn("softmax 1.17%", line("attention sinks"))  # the newest analysis, step 100
        self.assertIn("63.41%", line("attention sinks"))
        self.assertIn("reproduced at this scale.", line("attention sinks"))
        self.assertIn("89.70% of softpick's", line("sparse attention"))
        self.assertIn("not reproduced at this scale", line("kurtosis"))  # 25 > 20
        self.assertIn("not reproduced at this scale", line("largest"))
        self.assertIn("come with scale", out)
        # softpick with a sink, a softmax with lower extremes: each verdict follows the numbers
        sm2 = run_with("softmax_b", kurtosis=900.0, max_abs_activation=2000.0)
        sp2 = run_with("softpick_b", sink_rate=0.02, sparsity_zero=0.5)
        out = script("demo_summary.py", sm2, sp2).stdout
        self.assertIn("not reproduced", line("attention sinks"))
        self.assertIn("; reproduced at this scale", line("kurtosis"))
        self.assertIn("; reproduced at this scale", line("largest"))
        self.assertNotIn("come with scale", out)
        # refusals: runs in the wrong order, a run without analysis
        p = script("demo_summary.py", sp, sm, rc=1)
        self.assertIn("expected softmax", p.stderr)
        (self.tmp / "bare").mkdir()
        p = script("demo_summary.py", self.tmp / "bare", sp, rc=1)
        self.assertIn("no analysis/step_*.json", p.stderr)

    def test_compare_runs_errors(self):
        p = script("compare_runs.py", self.tmp, rc=1)
        self.assertIn("no metrics.jsonl", p.stderr)
        (self.tmp / "metrics.jsonl").write_text("")
        p = script("compare_runs.py", self.tmp, "--analysis", "a.json", "b.json", rc=2)
        self.assertIn("--analysis: 2 values for 1 runs", p.stderr)


class TrainedRunsTest(Tmp, unittest.TestCase):
    """Two tiny runs trained and analysed by the softpick binary."""

    @classmethod
    def setUpClass(cls):
        cls._data = tempfile.TemporaryDirectory(prefix="softpick_runs_")
        data = Path(cls._data.name)
        rng = random.Random(5)
        for name, n in (("train", 40000), ("val", 3000)):
            tokens = [1] + [1 if rng.randrange(40) == 0 else 3 + rng.randrange(60) for _ in range(n - 1)]
            testlib.write_shard(data / f"d_{name}.bin", tokens)
        cls.runs = {}
        for attention in ("softmax", "softpick"):
            run_dir = data / attention
            run(SOFTPICK, "train", TINY, f"--model.attention={attention}",
                f"--data.train_files={data / 'd_train.bin'}", f"--data.val_files={data / 'd_val.bin'}",
                f"--training.run_dir={run_dir}", "--training.steps=10", "--training.batch_size=8",
                "--training.threads=2", "--logging.eval_interval=5")
            run(SOFTPICK, "analyze", run_dir, "--data", data / "d_val.bin", "--samples", "4", "--threads", "2",
                "--dump-attention", "0:0,1:2", "--dump-dir", run_dir / "maps")
            cls.runs[attention] = run_dir

    @classmethod
    def tearDownClass(cls):
        cls._data.cleanup()

    def analysis(self, attention):
        return json.loads((self.runs[attention] / "analysis" / "step_00000010.json").read_text())

    def test_dumped_maps_load_with_numpy(self):
        for attention in ("softmax", "softpick"):
            files = self.analysis(attention)["attention_dumps"]
            self.assertEqual([Path(f).name for f in files], ["attention_L0_H0.npy", "attention_L1_H2.npy"])
            for f in files:
                m = np.load(f)
                self.assertEqual((m.dtype, m.shape), (np.float32, (32, 32)), f)
                self.assertTrue((np.triu(m, 1) == 0).all(), f"{f}: weight on future keys")
                self.assertTrue((m >= 0).all(), f)
                rows = m.sum(axis=1)
                lower = m[np.tril_indices(32)]
                if attention == "softmax":
                    np.testing.assert_allclose(rows, 1.0, atol=1e-5)
                    self.assertTrue((lower > 0).all(), f"{f}: a softmax weight is exactly 0")
                else:
                    self.assertTrue((rows <= 1 + 1e-5).all(), f)
        softpick_zeros = sum(int((np.load(f)[np.tril_indices(32)] == 0).sum())
                             for f in self.analysis("softpick")["attention_dumps"])
        self.assertGreater(softpick_zeros, 0)

    def test_scripts_on_real_runs(self):
        maps = [self.runs[a] / "maps" / "attention_L1_H2.npy" for a in ("softmax", "softpick")]
        script("plot_attention.py", *maps, "--titles", "softmax", "softpick", "--out", self.tmp / "att.png")
        self.assertPng(self.tmp / "att.png")
        script("plot_activations.py", self.runs["softmax"], self.runs["softpick"], "--out", self.tmp / "act.png")
        self.assertPng(self.tmp / "act.png")
        p = script("compare_runs.py", self.runs["softmax"], self.runs["softpick"], "--out-dir", self.tmp / "cmp")
        self.assertPng(self.tmp / "cmp" / "loss.png")
        self.assertFalse((self.tmp / "cmp" / "analysis.png").exists())  # no analysis records in metrics.jsonl
        self.assertPng(self.tmp / "cmp" / "summary.png")  # from the analysis files
        for attention in ("softmax", "softpick"):
            row = next(l for l in p.stdout.splitlines() if l.startswith(f"{attention} ({attention})"))
            a = self.analysis(attention)
            self.assertIn(f"{100 * a['sparsity_zero']:.2f}%", row)
            self.assertIn(f"{a['kurtosis']:.4g}", row)
            self.assertIn(f"{a['min_activation']:.4g}", row)
            self.assertIn(f"{a['max_activation']:.4g}", row)
            self.assertIn("step_00000010.json", row)


def main():
    global SOFTPICK
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--softpick", metavar="PATH", help="the softpick binary: also train, analyse and check real runs")
    args, rest = ap.parse_known_args()
    SOFTPICK = testlib.softpick_binary(args.softpick)
    return testlib.run([SyntheticInputsTest] + ([TrainedRunsTest] if SOFTPICK else []), rest)

if __name__ == "__main__":
    sys.exit(main())
