#!/usr/bin/env python3
"""A softpick checkpoint loads in Python: model.safetensors with the `safetensors` package, under Hugging
Face Llama names and shapes, with the SHA-256 that state.json records.

Usage: python3 tests/test_checkpoint_interop.py --softpick BUILD/softpick
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import unittest

import testlib

SOFTPICK = None
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CheckpointInteropTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        data = testlib.write_byte_corpus(d, "the quick brown fox jumps over the lazy dog. " * 400)
        cls.run_dir = os.path.join(d, "run")
        subprocess.run([SOFTPICK, "train", os.path.join(ROOT, "tests/configs/tiny.json"),
                        *data,
                        f"--training.run_dir={cls.run_dir}", "--training.steps=6", "--checkpoint.interval=6",
                        "--model.tie_word_embeddings=false"],
                       check=True, capture_output=True)
        cls.ckpt = os.path.join(cls.run_dir, "checkpoints", "step_00000006")
        with open(os.path.join(cls.ckpt, "state.json")) as f:
            cls.state = json.load(f)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_names_and_shapes_are_hugging_face_llama(self):
        try:
            from safetensors.numpy import load_file
        except ImportError:
            self.fail("the safetensors package is missing: pip install safetensors numpy")
        tensors = load_file(os.path.join(self.ckpt, "model.safetensors"))
        m = self.state["config"]["model"]
        C, F, V, L = m["hidden_size"], m["intermediate_size"], m["vocab_size"], m["num_hidden_layers"]
        D = C // m["num_heads"]
        expected = {"model.embed_tokens.weight": (V, C), "model.norm.weight": (C,), "lm_head.weight": (V, C)}
        for l in range(L):
            p = f"model.layers.{l}."
            expected.update({
                p + "input_layernorm.weight": (C,), p + "post_attention_layernorm.weight": (C,),
                p + "self_attn.q_proj.weight": (m["num_heads"] * D, C),
                p + "self_attn.k_proj.weight": (m["num_kv_heads"] * D, C),
                p + "self_attn.v_proj.weight": (m["num_kv_heads"] * D, C),
                p + "self_attn.o_proj.weight": (C, m["num_heads"] * D),
                p + "mlp.gate_proj.weight": (F, C), p + "mlp.up_proj.weight": (F, C),
                p + "mlp.down_proj.weight": (C, F)})
        self.assertEqual({k: tuple(v.shape) for k, v in tensors.items()}, expected)
        self.assertTrue(all(str(v.dtype) == "float32" for v in tensors.values()))
        # trained norms have moved away from their init of 1, and nothing is NaN
        self.assertNotAlmostEqual(float(abs(tensors["model.norm.weight"] - 1).max()), 0.0)
        import numpy as np
        self.assertTrue(all(np.isfinite(v).all() for v in tensors.values()))

    def test_checksums_match_state_json(self):
        for name, rec in self.state["files"].items():
            with open(os.path.join(self.ckpt, name), "rb") as f:
                data = f.read()
            self.assertEqual(len(data), rec["bytes"])
            self.assertEqual(hashlib.sha256(data).hexdigest(), rec["sha256"])

    def test_optimizer_state_holds_both_moments(self):
        from safetensors.numpy import load_file
        opt = load_file(os.path.join(self.ckpt, "optimizer.safetensors"))
        self.assertIn("model.embed_tokens.weight.exp_avg", opt)
        self.assertIn("model.embed_tokens.weight.exp_avg_sq", opt)
        self.assertGreaterEqual(float(opt["lm_head.weight.exp_avg_sq"].min()), 0.0)

    def test_inspect_verifies(self):
        r = subprocess.run([SOFTPICK, "checkpoint", "inspect", self.ckpt], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("valid       yes", r.stdout)
        self.assertIn("step        6", r.stdout)


def main():
    global SOFTPICK
    ap = argparse.ArgumentParser()
    ap.add_argument("--softpick", required=True)
    args, rest = ap.parse_known_args()
    SOFTPICK = testlib.softpick_binary(args.softpick)
    return testlib.run([CheckpointInteropTest], rest)

if __name__ == "__main__":
    sys.exit(main())
