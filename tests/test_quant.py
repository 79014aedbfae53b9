#!/usr/bin/env python3
"""`softpick quantize` (docs/quantization.md) against reference implementations and end to end.

- hqq, nf4, fp4 and int8 against the `hqq` and `bitsandbytes` packages on the same weights;
- gptq against GPTQ's published algorithm (IST-DASLab's fasterquant with true-sequential layers), written
  here in torch and run on the exported model in transformers, on the same calibration windows;
- every method and bit width on a small checkpoint: quantization.json, the packed file reproducing the
  dequantized weights, eval (with --act-quant), analyze and export on the result, GPTQ's layer objective
  below round-to-nearest's and errors falling with bits;
- malformed requests end with one message naming the flag or file.

Needs torch, transformers, hqq and bitsandbytes: run it with tests/run_with_hf_env.sh.
Usage: tests/run_with_hf_env.sh tests/test_quant.py --softpick BUILD/softpick [NAME_FILTER ...]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
from safetensors.numpy import load_file

import testlib

SOFTPICK = None
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T = 64             # the tiny models' context and the calibration windows' length
CALIB_SEQS = 16
MODEL = ["--model.hidden_size=128", "--model.intermediate_size=256", "--model.num_heads=4", "--model.num_kv_heads=2"]
VARIANTS = {"softmax": ["--model.attention=softmax"], "softpick": ["--model.attention=softpick"]}
LINEAR = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
          "mlp.up_proj", "mlp.down_proj"]


def run(*args, ok=True):
    return testlib.run_softpick(SOFTPICK, *args, ok=ok)


class Fixture:
    """A byte corpus, a short softmax and softpick run, and each quantized once per (method, bits)."""
    tmp = None
    runs = {}
    quantized = {}

    @classmethod
    def setup(cls):
        if cls.tmp:
            return
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        text = "the quick brown fox jumps over the lazy dog. what is the fox? a fox is quick. " * 300
        cls.data = testlib.write_byte_corpus(d, text)
        cls.val_tokens = ([1] + [b + 3 for b in text.encode()])[:4000]
        cls.val = os.path.join(d, "t_val.bin")
        for name, extra in VARIANTS.items():
            run_dir = os.path.join(d, "runs", name)
            run("train", os.path.join(ROOT, "tests/configs/tiny.json"), *cls.data, f"--training.run_dir={run_dir}",
                "--training.steps=40", f"--training.seq_len={T}", "--checkpoint.interval=40", "--optimizer.lr=1e-2",
                *MODEL, *extra)
            cls.runs[name] = run_dir

    @classmethod
    def quantize(cls, name, method, bits, *extra):
        key = (name, method, bits, extra)
        if key not in cls.quantized:
            out = os.path.join(cls.tmp.name, "q", f"{name}-{method}{bits}-{len(cls.quantized)}")
            args = ["quantize", cls.runs[name], "--method", method, "--bits", bits, "--out", out, "--packed", *extra]
            if method == "gptq":
                args += ["--calibration-sequences", CALIB_SEQS, "--calibration-len", T]
            run(*args)
            cls.quantized[key] = out
        return cls.quantized[key]

    @staticmethod
    def checkpoint(run_dir):
        steps = sorted(os.listdir(os.path.join(run_dir, "checkpoints")))
        return os.path.join(run_dir, "checkpoints", steps[-1])

    @classmethod
    def weights(cls, run_dir):
        return load_file(os.path.join(cls.checkpoint(run_dir), "model.safetensors"))

    @classmethod
    def record(cls, run_dir):
        return json.load(open(os.path.join(cls.checkpoint(run_dir), "quantization.json")))


class QuantTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        Fixture.setup()

    def linear_names(self):
        return [f"model.layers.{l}.{n}.weight" for l in range(2) for n in LINEAR]


def relative_error(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


class ReferenceTest(QuantTestCase):
    """The weight-only methods against the packages that define them, on the same fp32 weights."""

    def test_hqq_matches_the_hqq_package(self):
        from hqq.core.quantize import Quantizer
        src = Fixture.weights(Fixture.runs["softpick"])
        for bits in (2, 3, 4, 8):
            ours = Fixture.weights(Fixture.quantize("softpick", "hqq", bits))
            packed = load_file(os.path.join(Fixture.checkpoint(Fixture.quantize("softpick", "hqq", bits)),
                                            "quantized.safetensors"))
            for name in self.linear_names():
                w = torch.tensor(src[name])
                # HQQ's defaults as its BaseQuantizeConfig sets them: axis 1, group 64, zero rounded at 4 bits
                wq, meta = Quantizer.quantize(w, nbits=bits, channel_wise=True, group_size=64, optimize=True,
                                              round_zero=bits == 4, axis=1, bitpack=False, device="cpu")
                meta["compute_dtype"] = torch.float32
                ref = Quantizer.dequantize(wq, meta).numpy()
                step = np.repeat(packed[name[:-7] + ".scale"].astype(np.float32), 64, axis=1)
                # ours keeps scale and zero at fp16, the package at fp32 on the CPU: a code may differ where a
                # value sits next to a rounding boundary, by one step
                differ = np.abs(ours[name] - ref) > 0.5 * step
                with self.subTest(bits=bits, tensor=name):
                    self.assertLess(differ.mean(), 0.005, "codes that differ")
                    self.assertLessEqual(np.abs(ours[name] - ref).max(), 1.01 * step.max())
                    e_ours, e_ref = relative_error(src[name], ours[name]), relative_error(src[name], ref)
                    self.assertAlmostEqual(e_ours / e_ref, 1.0, delta=0.01)

    def test_nf4_and_fp4_match_bitsandbytes(self):
        import bitsandbytes.functional as F
        src = Fixture.weights(Fixture.runs["softmax"])
        for method in ("nf4", "fp4"):
            ours = Fixture.weights(Fixture.quantize("softmax", method, 4))
            for name in self.linear_names():
                q, state = F.quantize_4bit(torch.tensor(src[name]), blocksize=64, quant_type=method)
                ref = F.dequantize_4bit(q, state).numpy()
                with self.subTest(method=method, tensor=name):
                    np.testing.assert_allclose(ours[name], ref, rtol=1e-6, atol=1e-9)

    def test_int8_matches_bitsandbytes_vectorwise(self):
        import bitsandbytes.functional as F
        src = Fixture.weights(Fixture.runs["softmax"])
        ours = Fixture.weights(Fixture.quantize("softmax", "int8", 8))
        for name in self.linear_names():
            w = src[name]
            # Linear8bitLt hands it fp16 weights; its CPU kernel takes the fp32 ones as they are, like ours
            cb, scb, _ = F.int8_vectorwise_quant(torch.tensor(w))
            ref = F.int8_vectorwise_dequant(cb, scb).numpy()
            step = np.abs(w).max(axis=1, keepdims=True) / 127
            with self.subTest(tensor=name):
                np.testing.assert_array_equal(np.round(ours[name] / step), cb.numpy())  # the same codes
                np.testing.assert_allclose(ours[name], ref, rtol=2e-6, atol=1e-9)


def gptq_reference(W, H, bits, group, damp=0.01, block=128):
    """GPTQ's fasterquant (asymmetric min-max grid, groups from the weights as earlier blocks left them),
    in float64, with the scale rounded to fp16 as softpick stores it."""
    W, H = W.clone().double(), H.clone().double()
    rows, cols = W.shape
    maxq = 2 ** bits - 1
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += damp * torch.mean(torch.diag(H)) * torch.eye(cols, dtype=torch.float64)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    Q = torch.zeros_like(W)
    scale = zero = None
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        W1, Err1, Hinv1 = W[:, i1:i2].clone(), torch.zeros(rows, i2 - i1, dtype=torch.float64), Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            if (i1 + i) % group == 0:
                x = W[:, i1 + i:i1 + i + group].float()
                xmin, xmax = torch.clamp(x.min(1).values, max=0), torch.clamp(x.max(1).values, min=0)
                both = (xmin == 0) & (xmax == 0)
                xmin[both], xmax[both] = -1, 1
                scale = torch.clamp(((xmax - xmin) / maxq).half().float(), min=2 ** -24)
                zero = torch.clamp(torch.round(-xmin / scale), 0, maxq)
            w, d = W1[:, i], Hinv1[i, i]
            q = torch.clamp(torch.round(w.float() / scale) + zero, 0, maxq)
            deq = ((q - zero) * scale).double()
            Q[:, i1 + i] = deq
            err = (w - deq) / d
            W1[:, i:] -= err.unsqueeze(1) @ Hinv1[i, i:].unsqueeze(0)
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return Q


class StopForward(Exception):
    pass


class GptqReferenceTest(QuantTestCase):
    """softpick's GPTQ model pass against the published algorithm run in transformers: block by block, each
    group of projections (q k v | o | gate up | down) on the inputs the quantized part of the model gives."""

    def test_gptq_matches_the_reference_algorithm_layer_by_layer(self):
        from transformers import AutoModelForCausalLM
        worst_same, worst_ratio = 1.0, 0.0
        for variant, bits in (("softmax", 4), ("softpick", 4), ("softpick", 2)):
            export = os.path.join(Fixture.tmp.name, "hf-" + variant)
            run("export", Fixture.runs[variant], "--out", export, "--overwrite")
            model = AutoModelForCausalLM.from_pretrained(export, trust_remote_code=True, dtype=torch.float32).eval()
            ours = Fixture.weights(Fixture.quantize(variant, "gptq", bits, "--group-size", 64))
            rec = Fixture.record(Fixture.quantize(variant, "gptq", bits, "--group-size", 64))
            self.assertEqual(rec["calibration"]["tokens"], CALIB_SEQS * T)
            tokens = torch.tensor([Fixture.val_tokens[i * T:(i + 1) * T] for i in range(CALIB_SEQS)])  # stream windows
            cache = {}

            def capture(module, args, kwargs):
                cache["x"] = args[0] if args else kwargs["hidden_states"]
                # without the key/value cache, which each further call of the layer would grow
                cache["kw"] = {k: v for k, v in kwargs.items() if k not in ("hidden_states", "cache", "past_key_values")}
                cache["kw"]["use_cache"] = False
                raise StopForward

            layers = model.model.layers
            h = layers[0].register_forward_pre_hook(capture, with_kwargs=True)
            with torch.no_grad():
                try:
                    model(tokens, use_cache=False)
                except StopForward:
                    pass
            h.remove()
            x, kw = cache["x"], cache["kw"]
            groups = [LINEAR[:3], LINEAR[3:4], LINEAR[4:6], LINEAR[6:]]
            for l, layer in enumerate(layers):
                for group in groups:
                    stats = {}

                    def hook(name):
                        def add(module, inputs, output):
                            X = inputs[0].reshape(-1, inputs[0].shape[-1]).double()
                            s, n = stats.get(name, (0, 0))
                            stats[name] = (s + X.T @ X, n + X.shape[0])
                        return add

                    hooks = [layer.get_submodule(n).register_forward_hook(hook(n)) for n in group]
                    with torch.no_grad():
                        layer(x, **kw)
                    for hk in hooks:
                        hk.remove()
                    for n in group:
                        lin = layer.get_submodule(n)
                        s, count = stats[n]
                        H = 2 * s / count
                        W = lin.weight.data.double()
                        ref = gptq_reference(W, H, bits, 64)
                        mine = torch.tensor(ours[f"model.layers.{l}.{n}.weight"]).double()
                        err = lambda q: float(torch.trace((W - q) @ H @ (W - q).T))  # noqa: E731
                        with self.subTest(variant=variant, bits=bits, layer=l, tensor=n):
                            same = (torch.abs(mine - ref) < 1e-6).double().mean().item()
                            worst_same = min(worst_same, same)
                            worst_ratio = max(worst_ratio, abs(err(mine) / err(ref) - 1))
                            self.assertGreater(same, 0.99, "weights equal to the reference's")
                            self.assertAlmostEqual(err(mine) / err(ref), 1.0, delta=0.01)
                        lin.weight.data = ref.float()
                with torch.no_grad():
                    out = layer(x, **kw)
                x = out[0] if isinstance(out, tuple) else out
        print(f"\n  gptq against the reference: at least {worst_same:.4f} of each tensor's weights equal, layer "
              f"objectives within {worst_ratio:.2e}", file=sys.stderr)


class EndToEndTest(QuantTestCase):
    """Every method and bit width on a small checkpoint, and what reads the result."""

    def unpack(self, packed, name, rec, shape):
        """The dequantized tensor from quantized.safetensors, decoded here from the documented layout."""
        rows, cols = shape
        bits = rec["bits"]
        raw = packed[name + ".qweight"]
        bitstream = np.unpackbits(raw, axis=1, bitorder="little")[:, :cols * bits].reshape(rows, cols, bits)
        codes = (bitstream.astype(np.int64) << np.arange(bits)).sum(axis=2)
        scale = packed[name + ".scale"].astype(np.float32)
        group = cols if rec["group_size"] == "row" else rec["group_size"]
        s = np.repeat(scale, group, axis=1)
        if rec["method"] in ("nf4", "fp4"):
            return np.array(rec["codebook"], dtype=np.float32)[codes] * s
        z = np.repeat(packed[name + ".zero"].astype(np.float32), group, axis=1) if name + ".zero" in packed else 128
        return (codes.astype(np.float32) - z) * s

    def test_every_method_and_bit_width(self):
        cases = [(m, b) for m in ("rtn", "hqq", "gptq") for b in (2, 3, 4, 8)] + [("nf4", 4), ("fp4", 4), ("int8", 8)]
        src = Fixture.weights(Fixture.runs["softpick"])
        errors = {}
        for method, bits in cases:
            with self.subTest(method=method, bits=bits):
                out = Fixture.quantize("softpick", method, bits)
                rec = Fixture.record(out)
                w = Fixture.weights(out)
                self.assertEqual((rec["method"], rec["bits"]), (method, bits))
                self.assertEqual(len(rec["layers"]), 14)
                self.assertEqual(rec["activations"] is not None, method == "int8")
                packed = load_file(os.path.join(Fixture.checkpoint(out), "quantized.safetensors"))
                for name in self.linear_names():
                    np.testing.assert_array_equal(self.unpack(packed, name[:-7], rec, w[name].shape), w[name])
                    levels = max(len(np.unique(row)) for row in w[name].reshape(-1, 64 if method != "int8" else w[name].shape[1]))
                    self.assertLessEqual(levels, 2 ** bits)
                for name in ("model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"):
                    np.testing.assert_array_equal(w[name], src[name])  # full precision without --include-head
                packed_bytes = os.path.getsize(os.path.join(Fixture.checkpoint(out), "quantized.safetensors"))
                self.assertLess(packed_bytes, 2 * rec["summary"]["quantized_params"] * (bits + 1) / 16 + 8192)
                errors[(method, bits)] = rec
                if method == "gptq":
                    for layer in rec["layers"]:
                        self.assertLess(layer["output_error"], layer["rtn_output_error"], layer["name"])
        for method in ("rtn", "hqq", "gptq"):
            key = "output_error" if method == "gptq" else "relative_error"
            mean = [np.mean([x[key] for x in errors[(method, b)]["layers"]]) for b in (2, 3, 4, 8)]
            self.assertEqual(mean, sorted(mean, reverse=True), f"{method}: error falls with bits")

    def test_the_quantized_checkpoint_evaluates_analyses_and_exports(self):
        d = Fixture.tmp.name
        out = Fixture.quantize("softpick", "hqq", 4)
        ev = os.path.join(d, "eval_hqq4.json")
        run("eval", out, "--val", Fixture.val, "--val-tokens", 1000, "--json", ev)
        j = json.load(open(ev))
        self.assertEqual(j["quantization"], {"method": "hqq", "bits": 4, "group_size": 64})
        self.assertTrue(np.isfinite(j["val"]["loss"]))
        run("analyze", out, "--data", Fixture.val, "--samples", 2, "--json", os.path.join(d, "an.json"))
        self.assertIn("kurtosis", open(os.path.join(d, "an.json")).read())
        exp = os.path.join(d, "hf-hqq4")
        run("export", out, "--out", exp, "--overwrite")
        self.assertEqual(load_file(os.path.join(exp, "model.safetensors"))["model.layers.0.mlp.up_proj.weight"].tobytes(),
                         Fixture.weights(out)["model.layers.0.mlp.up_proj.weight"].tobytes())
        run("sample", out, "--prompt", "the", "--max-tokens", 5)
        # int8 checkpoints evaluate with LLM.int8's outlier columns, which --act-quant none turns off
        i8 = Fixture.quantize("softpick", "int8", 8)
        p = run("eval", i8, "--val", Fixture.val, "--val-tokens", 1000)
        self.assertIn("llm.int8", p.stdout)
        p = run("eval", i8, "--val", Fixture.val, "--val-tokens", 1000, "--act-quant", "none")
        self.assertIn("activations none", p.stdout)

    def test_activation_quantization_changes_the_loss_a_little(self):
        losses = {}
        for act in ("none", "int8", "fp8"):
            for scope in ("token", "tensor"):
                ev = os.path.join(Fixture.tmp.name, f"act_{act}_{scope}.json")
                run("eval", Fixture.runs["softmax"], "--val", Fixture.val, "--val-tokens", 2000, "--act-quant", act,
                    "--act-quant-scope", scope, "--json", ev)
                losses[(act, scope)] = json.load(open(ev))["val"]["loss"]
        self.assertEqual(losses[("none", "token")], losses[("none", "tensor")])
        for k, v in losses.items():
            if k[0] != "none":
                self.assertNotEqual(v, losses[("none", "token")], k)
                self.assertLess(abs(v - losses[("none", "token")]), 0.1, k)

    def test_gptq_and_activation_quantization_on_the_cuda_backend(self):
        # On the CUDA execution harness where no GPU is visible: the calibration passes in bf16
        probe = run("eval", Fixture.runs["softmax"], "--val", Fixture.val, "--val-tokens", 64, "--device", "cuda", ok=False)
        if "CUDA backend" in probe.stderr and probe.returncode != 0:
            self.skipTest("this build has no CUDA backend")
        cpu = Fixture.record(Fixture.quantize("softmax", "gptq", 4))
        out = os.path.join(Fixture.tmp.name, "gptq-cuda")
        run("quantize", Fixture.runs["softmax"], "--method", "gptq", "--bits", 4, "--out", out, "--device", "cuda",
            "--calibration-sequences", CALIB_SEQS, "--calibration-len", T)
        gpu = Fixture.record(out)
        self.assertTrue(gpu["calibration"]["device"].startswith("cuda"), gpu["calibration"]["device"])
        for a, b in zip(cpu["layers"], gpu["layers"]):
            self.assertLess(b["output_error"], b["rtn_output_error"], b["name"])
            self.assertAlmostEqual(b["output_error"] / a["output_error"], 1.0, delta=0.15, msg=b["name"])
        losses = {}
        for device in ("cpu", "cuda"):
            ev = os.path.join(Fixture.tmp.name, f"act_{device}.json")
            run("eval", Fixture.runs["softmax"], "--val", Fixture.val, "--val-tokens", 500, "--device", device,
                "--act-quant", "int8", "--json", ev)
            losses[device] = json.load(open(ev))["val"]["loss"]
        self.assertAlmostEqual(losses["cuda"], losses["cpu"], delta=0.02)

    def test_include_head_and_act_order(self):
        out = Fixture.quantize("softmax", "rtn", 4, "--include-head")
        rec = Fixture.record(out)
        self.assertEqual(len(rec["layers"]), 16)  # the blocks' 14, the embedding and the head
        self.assertFalse(np.array_equal(Fixture.weights(out)["lm_head.weight"],
                                        Fixture.weights(Fixture.runs["softmax"])["lm_head.weight"]))
        ao = Fixture.record(Fixture.quantize("softmax", "gptq", 3, "--act-order"))
        self.assertTrue(ao["gptq"]["act_order"])
        for layer in ao["layers"]:
            self.assertLess(layer["output_error"], layer["rtn_output_error"], layer["name"])


class StudyTest(QuantTestCase):
    """scripts/quant_study.sh on the two small runs: every row of the table, and its plot."""

    def test_the_study_prints_the_table(self):
        out = os.path.join(Fixture.tmp.name, "study")
        env = dict(os.environ, SOFTPICK_BUILD=os.path.dirname(SOFTPICK))
        p = subprocess.run([os.path.join(ROOT, "scripts", "quant_study.sh"), "--skip-build", "--softmax",
                            Fixture.runs["softmax"], "--softpick", Fixture.runs["softpick"], "--val", Fixture.val,
                            "--val-tokens", "1000", "--calibration", Fixture.val, "--calibration-sequences", "8",
                            "--bits", "2,4", "--out", out], capture_output=True, text=True, env=env)
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        table = open(os.path.join(out, "table.md")).read()
        self.assertIn(table.strip(), p.stdout)
        rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
        labels = [(m.strip(), b.strip()) for m, b in rows]
        expected = [("full precision", "32")] + [(m, b) for m in ("rtn", "hqq", "gptq") for b in ("4", "2")] + \
            [("nf4", "4"), ("fp4", "4"), ("int8", "8"), ("activations fp8 (W32A8)", "32/8"),
             ("activations int8 (W32A8)", "32/8")]
        self.assertEqual(labels, expected)
        self.assertNotIn(" - ", "".join(line for line in table.splitlines()[3:]))  # every cell filled but Δ of full
        records = json.load(open(os.path.join(out, "table.json")))
        self.assertEqual(records[0]["softpick"]["relative"], 1.0)
        self.assertTrue(os.path.getsize(os.path.join(out, "degradation.png")) > 10000)
        bad = subprocess.run([os.path.join(ROOT, "scripts", "quant_study.sh"), "--skip-build", "--bits", "9"],
                             capture_output=True, text=True, env=env)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--bits", bad.stderr)


class RefusalTest(QuantTestCase):
    """Malformed requests: one line naming the flag or file, a non-zero exit, nothing written."""

    def refused(self, *args, mentions, code=2):
        p = run("quantize", Fixture.runs["softmax"], *args, ok=False)
        self.assertEqual(p.returncode, code, p.stderr)
        self.assertIn(mentions, p.stderr)
        self.assertNotIn("Traceback", p.stderr)
        self.assertNotIn("precondition", p.stderr)
        return p

    def test_malformed_requests(self):
        out = os.path.join(Fixture.tmp.name, "refused")
        self.refused("--method", "rtn", "--bits", 9, "--out", out, mentions="--bits 9")
        self.refused("--method", "hqq", "--bits", 1, "--out", out, mentions="--bits 1")
        self.refused("--method", "nf4", "--bits", 3, "--out", out, mentions="4 bits only")
        self.refused("--method", "rtn", "--group-size", 48, "--out", out, mentions="--group-size 48")
        self.refused("--method", "int8", "--group-size", 64, "--out", out, mentions="--group-size 64")
        self.refused("--method", "gptq", "--calibration", "/nonexistent/*.bin", "--out", out, mentions="/nonexistent")
        self.refused("--method", "rtn", "--calibration", Fixture.val, "--out", out, mentions="--calibration")
        self.refused("--method", "awq", "--out", out, mentions="--method awq")
        self.refused("--method", "gptq", "--damp", 0, "--out", out, mentions="--damp")
        self.refused("--method", "rtn", "--out", Fixture.runs["softmax"], mentions="source run directory")
        self.assertFalse(os.path.exists(out))
        taken = Fixture.quantize("softmax", "rtn", 3)
        self.refused("--method", "rtn", "--out", taken, mentions="--overwrite")
        p = run("quantize", os.path.join(Fixture.tmp.name, "nothing"), "--method", "rtn", ok=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("nothing", p.stderr)

    def test_a_damaged_quantization_record_is_refused_naming_it(self):
        src = Fixture.quantize("softmax", "int8", 8)
        bad = os.path.join(Fixture.tmp.name, "damaged")
        shutil.copytree(src, bad)
        path = os.path.join(Fixture.checkpoint(bad), "quantization.json")
        with open(path, "w") as f:
            f.write("{not json")
        p = run("eval", bad, "--val", Fixture.val, "--val-tokens", 500, ok=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("quantization.json", p.stderr)
        p = run("eval", Fixture.runs["softmax"], "--val", Fixture.val, "--act-quant", "int4", ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--act-quant int4", p.stderr)


def main():
    global SOFTPICK
    parser = argparse.ArgumentParser()
    parser.add_argument("--softpick", required=True)
    args, rest = parser.parse_known_args()
    SOFTPICK = testlib.softpick_binary(args.softpick)
    try:
        return testlib.run([ReferenceTest, GptqReferenceTest, EndToEndTest, StudyTest, RefusalTest], rest)
    finally:
        if Fixture.tmp:
            Fixture.tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
