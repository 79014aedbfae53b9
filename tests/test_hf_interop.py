#!/usr/bin/env python3
"""Hugging Face interop (docs/interop.md): `softpick export` gives a directory that transformers runs with the
same logits (1e-4, fp32) and the same greedy tokens as `softpick sample`, for every attention variant;
`softpick import` of an export gives back the checkpoint's tensors bit for bit; lm-eval-harness scores a local
task on an export as `softpick eval` does; a synthetic fla-format
directory imports with its names and attention mapped; bad directories are refused naming file and tensor.

Needs torch and transformers: run it with the python of scripts/hf_env.sh (tests/run_with_hf_env.sh does).
Usage: tests/run_with_hf_env.sh tests/test_hf_interop.py --softpick BUILD/softpick [NAME_FILTER ...]
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
TOL_FP32 = 1e-4   # max |logit difference|, fp32 export against the fp32 CPU backend
PROMPT = "Q: What is the quick brown fox? A:"  # 35 byte tokens with BOS
NEW_TOKENS = 24
# every normaliser, SSMax, the output gate, tied embeddings and grouped-query attention at least once
VARIANTS = {
    "softmax": [],  # plain Llama: loads without any code of ours
    "softmax_tied_mha": ["--model.tie_word_embeddings=true", "--model.num_kv_heads=4"],
    "softpick": ["--model.attention=softpick"],
    "rectified": ["--model.attention=rectified"],
    "softmax1": ["--model.attention=softmax1"],
    "sink": ["--model.attention=sink"],
    "scaled_softpick": ["--model.attention=softpick", "--model.ssmax=true"],
    "gated_softmax": ["--model.attention_gate=true"],
    "gated_scaled_sink": ["--model.attention=sink", "--model.ssmax=true", "--model.attention_gate=true"],
}
PLAIN = {"softmax", "softmax_tied_mha"}  # exported as LlamaForCausalLM


def run(*args, ok=True):
    return testlib.run_softpick(SOFTPICK, *args, ok=ok)


def load_hf(directory, remote_code=True, dtype=torch.float32):
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=remote_code, dtype=dtype).eval()


class Fixture:
    """A byte corpus and one short training run per variant, shared by the test classes."""
    tmp = None
    runs = {}

    @classmethod
    def setup(cls):
        if cls.tmp:
            return
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.data = testlib.write_byte_corpus(
            d, "the quick brown fox jumps over the lazy dog. what is the fox? a fox is quick. " * 300)
        for name, extra in VARIANTS.items():
            run_dir = os.path.join(d, "runs", name)
            run("train", os.path.join(ROOT, "tests/configs/tiny.json"), *cls.data, f"--training.run_dir={run_dir}",
                "--training.steps=30", "--training.seq_len=96", "--checkpoint.interval=30", "--optimizer.lr=1e-2",
                "--model.attention=softmax", *extra)
            cls.runs[name] = run_dir

    @classmethod
    def checkpoint(cls, name):
        return os.path.join(cls.runs[name], "checkpoints", "step_00000030")


class InteropTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        Fixture.setup()


class ExportParityTest(InteropTestCase):
    """The exported model in transformers against softpick's own forward and greedy decoding."""

    def check_variant(self, name):
        out = os.path.join(Fixture.tmp.name, "hf", name)
        run("export", Fixture.runs[name], "--out", out, "--overwrite")
        cfg = json.load(open(os.path.join(out, "config.json")))
        logits_path = os.path.join(Fixture.tmp.name, f"{name}_logits.npy")
        sample_path = os.path.join(Fixture.tmp.name, f"{name}_sample.json")
        run("sample", Fixture.runs[name], "--prompt", PROMPT, "--temperature", 0, "--max-tokens", NEW_TOKENS,
            "--logits", logits_path, "--json", sample_path)
        ref_logits = np.load(logits_path)           # (P, V) from softpick's CPU backend
        sample = json.load(open(sample_path))

        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(out, trust_remote_code=True)
        ids = tok(PROMPT, return_tensors="pt").input_ids
        self.assertEqual(ids[0].tolist(), sample["prompt_ids"], "the exported tokenizer encodes as softpick does")
        self.assertEqual(tok("a <s>é").input_ids, [1] + [b + 3 for b in "a <s>é".encode()],
                         "the text of a special token is its bytes")
        plain = name in PLAIN
        self.assertEqual(cfg["model_type"], "llama" if plain else "softpick_llama")
        self.assertEqual("auto_map" in cfg, not plain)
        model = load_hf(out, remote_code=not plain)
        if plain:
            self.assertEqual(type(model).__name__, "LlamaForCausalLM")
        with torch.no_grad():
            logits = model(ids).logits[0].numpy()
        err = float(np.abs(logits - ref_logits).max())
        print(f"{name}: max |logit diff| {err:.2e} (max |logit| {np.abs(ref_logits).max():.2f})")
        self.assertLess(err, TOL_FP32, f"{name}: logits differ from softpick's forward")
        gen = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False)[0, ids.shape[1]:].tolist()
        self.assertEqual(gen, sample["ids"], f"{name}: greedy generation differs from softpick sample")
        self.assertEqual(tok.decode(gen, skip_special_tokens=True), sample["text"])
        self.check_padded_batch(name, model, tok)

    def check_padded_batch(self, name, model, tok):
        # a left-padded batch gives every row the logits and the greedy tokens it gets alone
        prompts = [PROMPT, "Q: fox?"]
        tok.pad_token, tok.padding_side = tok.eos_token, "left"
        batch = tok(prompts, return_tensors="pt", padding=True)
        positions = (batch.attention_mask.cumsum(-1) - 1).clamp_min(0)  # as generate() derives them
        with torch.no_grad():
            logits = model(**batch, position_ids=positions).logits
            out = model.generate(**batch, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
            for i, p in enumerate(prompts):
                ids = tok(p, return_tensors="pt").input_ids
                alone = model(ids).logits[0]
                n = ids.shape[1]
                err = float((logits[i, -n:] - alone).abs().max())
                self.assertLess(err, TOL_FP32, f"{name}: row {i} of a padded batch")
                self.assertEqual(out[i, -8:].tolist(), model.generate(ids, max_new_tokens=8, do_sample=False)[0, n:].tolist())

    def test_every_variant(self):
        for name in VARIANTS:
            with self.subTest(variant=name):
                self.check_variant(name)

    def test_installed_package_registers_the_model_type(self):
        # pip install ./python, into a scratch target: then from_pretrained(DIR) needs no remote code
        target = os.path.join(Fixture.tmp.name, "site")
        source = os.path.join(Fixture.tmp.name, "python")  # a copy: the build leaves files in the source tree
        shutil.copytree(os.path.join(ROOT, "python"), source)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--target", target, source], check=True)
        out = os.path.join(Fixture.tmp.name, "hf_pkg")
        run("export", Fixture.runs["scaled_softpick"], "--out", out)
        code = ("import sys, softpick_hf; from transformers import AutoModelForCausalLM; "
                f"m = AutoModelForCausalLM.from_pretrained({out!r}); "
                "print(type(m).__module__, type(m).__name__)")
        env = dict(os.environ, PYTHONPATH=target)
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        self.assertEqual(p.stdout.split()[-2:], ["softpick_hf.modeling_softpick", "SoftpickLlamaForCausalLM"])

    def test_bf16_export_loads_in_bf16(self):
        out = os.path.join(Fixture.tmp.name, "hf_bf16")
        run("export", Fixture.runs["softpick"], "--out", out, "--dtype", "bf16")
        header_dtypes = {v["dtype"] for k, v in _safetensors_header(os.path.join(out, "model.safetensors")).items()
                         if k != "__metadata__"}
        self.assertEqual(header_dtypes, {"BF16"})
        model = load_hf(out, dtype=torch.bfloat16)
        self.assertEqual(next(model.parameters()).dtype, torch.bfloat16)
        ids = torch.tensor([[1, 84, 107, 104, 35]])
        with torch.no_grad():
            lb = model(ids).logits.float()
            lf = load_hf(_export(Fixture.runs["softpick"], "hf_f32_for_bf16"))(ids).logits
        self.assertLess(float((lb - lf).abs().max()), 0.1 * float(lf.abs().max()), "bf16 export is far from fp32")


class DocSnippetTest(InteropTestCase):
    """The five lines of docs/interop.md generate what `softpick sample` prints."""

    def test_snippet(self):
        doc = open(os.path.join(ROOT, "docs", "interop.md")).read()
        block = doc.split("<!-- interop-snippet -->", 1)[1].split("```python", 1)[1].split("```", 1)[0]
        self.assertEqual(len(block.strip().splitlines()), 5)
        hf = _export(Fixture.runs["softpick"], "snippet_hf")
        # the fixture's context is 96 tokens: 60 new tokens keep both within it
        self.assertIn("max_new_tokens=100", block)
        code = block.replace("runs/demo_softpick_hf", hf).replace("max_new_tokens=100", "max_new_tokens=60")
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, errors="replace")
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        ours = run("sample", Fixture.runs["softpick"], "--prompt", "Q: Why", "--temperature", 0,
                   "--max-tokens", 60).stdout
        self.assertEqual(p.stdout, ours)


def _export(run_dir, name):
    out = os.path.join(Fixture.tmp.name, name)
    run("export", run_dir, "--out", out, "--overwrite")
    return out


def _safetensors_header(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n))


class RoundTripTest(InteropTestCase):
    """export then import gives the same tensors and model config."""

    def test_round_trip_every_variant(self):
        for name in VARIANTS:
            with self.subTest(variant=name):
                hf = _export(Fixture.runs[name], f"rt_{name}")
                back = os.path.join(Fixture.tmp.name, f"rt_{name}_run")
                run("import", hf, "--out", back)
                a = load_file(os.path.join(Fixture.checkpoint(name), "model.safetensors"))
                b = load_file(os.path.join(back, "checkpoints", "step_00000000", "model.safetensors"))
                self.assertEqual(sorted(a), sorted(b))
                for k in a:
                    self.assertTrue(np.array_equal(a[k], b[k]), f"{name}: {k} changed in the round trip")
                sa = json.load(open(os.path.join(Fixture.checkpoint(name), "state.json")))["config"]
                sb = json.load(open(os.path.join(back, "checkpoints", "step_00000000", "state.json")))["config"]
                self.assertEqual(sa["model"], sb["model"])
                self.assertEqual(sb["data"]["tokenizer"], "byte")

    def test_bf16_round_trip_is_bf16_rounding(self):
        hf = os.path.join(Fixture.tmp.name, "rt_bf16")
        run("export", Fixture.runs["sink"], "--out", hf, "--dtype", "bf16")
        back = os.path.join(Fixture.tmp.name, "rt_bf16_run")
        run("import", hf, "--out", back)
        a = load_file(os.path.join(Fixture.checkpoint("sink"), "model.safetensors"))
        b = load_file(os.path.join(back, "checkpoints", "step_00000000", "model.safetensors"))
        for k in a:
            rounded = torch.from_numpy(a[k]).to(torch.bfloat16).float().numpy()
            self.assertTrue(np.array_equal(rounded, b[k]), f"{k}: not the bf16 rounding of the original")

    def test_tokenizer_json_run(self):
        # a run with a Hugging Face tokenizer.json: the export carries it, the import brings it back
        tok = testlib.byte_level_bpe(["the quick brown fox jumps over the lazy dog"] * 50, 290)
        tok_path = os.path.join(Fixture.tmp.name, "bpe.json")
        tok.save(tok_path)
        run_dir = os.path.join(Fixture.tmp.name, "runs", "bpe")
        run("train", os.path.join(ROOT, "tests/configs/tiny.json"), *Fixture.data, f"--training.run_dir={run_dir}",
            "--training.steps=2", "--training.seq_len=96", "--checkpoint.interval=2", "--model.vocab_size=300",
            f"--data.tokenizer={tok_path}")
        hf = _export(run_dir, "bpe_hf")
        self.assertEqual(json.load(open(os.path.join(hf, "tokenizer.json")))["model"]["vocab"],
                         json.load(open(tok_path))["model"]["vocab"])
        cfg = json.load(open(os.path.join(hf, "tokenizer_config.json")))
        self.assertEqual((cfg["bos_token"], cfg["eos_token"]), ("<s>", "</s>"))
        from transformers import AutoTokenizer
        self.assertEqual(AutoTokenizer.from_pretrained(hf, trust_remote_code=True)("the fox").input_ids,
                         tok.encode("the fox").ids)
        back = os.path.join(Fixture.tmp.name, "bpe_back")
        run("import", hf, "--out", back)
        state = json.load(open(os.path.join(back, "checkpoints", "step_00000000", "state.json")))
        self.assertEqual(state["config"]["data"]["tokenizer"], os.path.join(back, "tokenizer.json"))
        self.assertTrue(os.path.isfile(os.path.join(back, "tokenizer.json")))
        ids = ",".join(map(str, [1] + tok.encode("the quick").ids))
        a = run("sample", run_dir, "--prompt-ids", ids, "--temperature", 0, "--max-tokens", 10).stdout
        b = run("sample", back, "--prompt-ids", ids, "--temperature", 0, "--max-tokens", 10).stdout
        self.assertEqual(a, b)

    def test_imported_checkpoint_serves_every_command(self):
        hf = _export(Fixture.runs["scaled_softpick"], "rt_cmds")
        back = os.path.join(Fixture.tmp.name, "rt_cmds_run")
        run("import", hf, "--out", back)
        run("checkpoint", "inspect", back)
        run("analyze", back, "--samples", 2, f"--data={Fixture.tmp.name}/t_val.bin")
        s1 = run("sample", back, "--prompt", "Q:", "--temperature", 0, "--max-tokens", 8).stdout
        s2 = run("sample", Fixture.runs["scaled_softpick"], "--prompt", "Q:", "--temperature", 0, "--max-tokens", 8).stdout
        self.assertEqual(s1, s2)
        new_run = os.path.join(Fixture.tmp.name, "finetune")
        run("train", os.path.join(ROOT, "tests/configs/tiny.json"), *Fixture.data, f"--training.run_dir={new_run}",
            "--training.steps=3", "--training.seq_len=96", "--checkpoint.interval=3", "--model.attention=softpick",
            "--model.ssmax=true", f"--init-from={back}/checkpoints/step_00000000")
        self.assertTrue(os.path.isdir(os.path.join(new_run, "checkpoints", "step_00000003")))


class LmEvalTest(InteropTestCase):
    """lm-eval-harness on an export (scripts/lm_eval.sh) scores a local task exactly as `softpick eval` does."""

    TASK_DIR = os.path.join(ROOT, "tests", "lm_eval")

    def check(self, name):
        hf = _export(Fixture.runs[name], f"lm_eval_{name}")
        out = os.path.join(Fixture.tmp.name, f"lm_eval_{name}_out")
        env = dict(os.environ, OUT=out, DEVICE="cpu", HF_DATASETS_CACHE=os.path.join(Fixture.tmp.name, "datasets"))
        p = subprocess.run([os.path.join(ROOT, "scripts", "lm_eval.sh"), hf, "tiny_qa", "--include_path", ".",
                            "--log_samples"], cwd=self.TASK_DIR, env=env, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        results_file = [os.path.join(r, f) for r, _, fs in os.walk(out) for f in fs if f.startswith("results_")]
        samples_file = [os.path.join(r, f) for r, _, fs in os.walk(out) for f in fs if f.startswith("samples_tiny_qa")]
        lm = json.load(open(results_file[0]))["results"]["tiny_qa"]
        samples = sorted((json.loads(line) for line in open(samples_file[0])), key=lambda x: x["doc_id"])

        ours_path = os.path.join(Fixture.tmp.name, f"lm_eval_{name}_ours.json")
        run("eval", Fixture.runs[name], "--tasks", os.path.join(self.TASK_DIR, "tiny_qa.jsonl"), "--json", ours_path)
        ours = json.load(open(ours_path))["tasks"]["tiny_qa"]
        print(f"{name}: lm-eval acc {lm['acc,none']:.4f} acc_norm {lm['acc_norm,none']:.4f}; "
              f"softpick eval acc {ours['acc']:.4f} acc_norm {ours['acc_norm']:.4f}")
        self.assertEqual(lm["acc,none"], ours["acc"])
        self.assertEqual(lm["acc_norm,none"], ours["acc_norm"])
        self.assertEqual(len(samples), len(ours["outputs"]))
        for s, o in zip(samples, ours["outputs"]):
            theirs = [float(r[0][0]) for r in s["resps"]]
            self.assertEqual(len(theirs), len(o["logprobs"]))
            for a, b in zip(theirs, o["logprobs"]):
                self.assertAlmostEqual(a, b, delta=TOL_FP32 * max(1.0, abs(b)), msg=f"{name}, doc {s['doc_id']}")
        self.assertGreater(ours["acc"], 0.0, "the task should not be degenerate for the trained model")

    def test_plain_llama(self):
        self.check("softmax")

    def test_remote_code_model(self):
        self.check("gated_scaled_sink")


# ---- fla's format: the Softpick paper's released models ----

def fla_directory(path, attn_impl="parallel_scaled_softpick_attn", model_type="transformer", C=32, L=2, H=4,
                  Hkv=2, V=259, ratio=4, seed=0, drop=None, dtype=torch.bfloat16, **extra):
    """A synthetic fla TransformerForCausalLM directory: fla's config keys and tensor names, random weights
    (bf16 as fla saves them, or `dtype`). Returns the tensors written (their fp32 values)."""
    rng = np.random.default_rng(seed)
    D = C // H
    F = 256 * ((int(C * ratio * 2 / 3) + 255) // 256)
    t = {"model.embeddings.weight": (V, C), "model.norm.weight": (C,), "lm_head.weight": (V, C)}
    gated = model_type == "gated_attention_transformer"
    for l in range(L):
        p = f"model.layers.{l}."
        t.update({p + "attn_norm.weight": (C,), p + "mlp_norm.weight": (C,),
                  p + "attn.q_proj.weight": (H * D * (2 if gated else 1), C), p + "attn.k_proj.weight": (Hkv * D, C),
                  p + "attn.v_proj.weight": (Hkv * D, C), p + "attn.o_proj.weight": (C, H * D),
                  p + "mlp.gate_proj.weight": (F, C), p + "mlp.up_proj.weight": (F, C),
                  p + "mlp.down_proj.weight": (C, F)})
        if "scaled" in attn_impl:
            t[p + "attn.s"] = (H, 1)
            t[p + "attn.logn"] = (64, 1, 1)  # a buffer: ignored
        if model_type == "gpt_oss_sink_transformer":
            t[p + "attn.sinks"] = (H,)
    tensors = {k: torch.from_numpy(rng.normal(0, 0.05, s).astype(np.float32)).to(dtype)
               for k, s in t.items() if k != drop}
    os.makedirs(path, exist_ok=True)
    from safetensors.torch import save_file as save_torch
    save_torch(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    config = {"model_type": model_type, "attn_impl": attn_impl, "hidden_size": C, "num_hidden_layers": L,
              "num_heads": H, "num_kv_heads": Hkv, "hidden_ratio": ratio, "intermediate_size": None,
              "hidden_act": "swish", "norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 128,
              "vocab_size": V, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
              "fuse_norm": True, "fuse_swiglu": True, "fuse_cross_entropy": True, "initializer_range": 0.006}
    config.update(extra)
    json.dump(config, open(os.path.join(path, "config.json"), "w"))
    return {k: v.float().numpy() for k, v in tensors.items()}


FLA_TO_CHECKPOINT = [("model.embeddings.", "model.embed_tokens."), (".attn_norm.", ".input_layernorm."),
                     (".mlp_norm.", ".post_attention_layernorm."), (".attn.", ".self_attn.")]


class FlaImportTest(InteropTestCase):
    def import_fla(self, name, **kw):
        src = os.path.join(Fixture.tmp.name, "fla", name)
        tensors = fla_directory(src, **kw)
        out = os.path.join(Fixture.tmp.name, "fla_runs", name)
        run("import", src, "--out", out)
        ckpt = os.path.join(out, "checkpoints", "step_00000000")
        return tensors, load_file(os.path.join(ckpt, "model.safetensors")), \
            json.load(open(os.path.join(ckpt, "state.json")))["config"]["model"]

    def test_scaled_softpick_names_and_values(self):
        src, got, model = self.import_fla("scaled_softpick")
        self.assertEqual((model["attention"], model["ssmax"], model["attention_gate"]), ("softpick", True, False))
        self.assertEqual(model["intermediate_size"], 256)  # fla's rule: int(32 * 4 * 2/3) = 85, rounded up to 256
        expected = {}
        for k, v in src.items():
            if k.endswith(".attn.logn"):
                continue
            name = k
            for a, b in FLA_TO_CHECKPOINT:
                name = name.replace(a, b)
            if name.endswith(".self_attn.s"):
                name, v = name[:-1] + "ssmax_scale", v.reshape(-1)
            expected[name] = v
        self.assertEqual(sorted(expected), sorted(got))
        for k in expected:
            self.assertTrue(np.array_equal(expected[k], got[k]), k)

    def test_f16_and_f32_tensor_files(self):
        for dtype in (torch.float16, torch.float32):
            with self.subTest(dtype=str(dtype)):
                src, got, _ = self.import_fla(f"dtype_{dtype}", attn_impl="parallel_attn", dtype=dtype)
                self.assertTrue(np.array_equal(got["model.layers.0.mlp.up_proj.weight"],
                                               src["model.layers.0.mlp.up_proj.weight"]))

    def test_attention_settings(self):
        cases = {"parallel_attn": ("transformer", "softmax", False, False),
                 "parallel_rectified_attn": ("transformer", "rectified", False, False),
                 "parallel_softpick_attn": ("transformer", "softpick", False, False),
                 "parallel_softmax_plus_one_attn": ("softmax_plus_one_transformer", "softmax1", False, False),
                 "gpt_oss_flex_attention_sink": ("gpt_oss_sink_transformer", "sink", False, False),
                 "gated_attn": ("gated_attention_transformer", "softmax", False, True)}
        for impl, (model_type, att, ssmax, gate) in cases.items():
            with self.subTest(attn_impl=impl):
                src, got, model = self.import_fla(impl, attn_impl=impl, model_type=model_type)
                self.assertEqual((model["attention"], model["ssmax"], model["attention_gate"]), (att, ssmax, gate))
                if gate:  # fla's gated q_proj: the q rows, then the gate rows
                    q = src["model.layers.1.attn.q_proj.weight"]
                    self.assertTrue(np.array_equal(got["model.layers.1.self_attn.q_proj.weight"], q[:32]))
                    self.assertTrue(np.array_equal(got["model.layers.1.self_attn.gate_proj.weight"], q[32:]))
                if att == "sink":
                    self.assertTrue(np.array_equal(got["model.layers.0.self_attn.sinks"],
                                                   src["model.layers.0.attn.sinks"]))

    def test_imported_fla_model_runs_the_same_in_transformers(self):
        # fla's model itself is not installed here; the imported weights, exported again, must run in
        # transformers exactly as in softpick (the check that the import and the export agree)
        src = os.path.join(Fixture.tmp.name, "fla", "runs_in_hf")
        fla_directory(src, attn_impl="parallel_softpick_attn", seed=3)
        out = os.path.join(Fixture.tmp.name, "fla_runs", "runs_in_hf")
        run("import", src, "--out", out)
        hf = os.path.join(Fixture.tmp.name, "fla_hf")
        run("export", out, "--out", hf, "--tokenizer", "byte")
        logits_path = os.path.join(Fixture.tmp.name, "fla_logits.npy")
        run("sample", out, "--prompt", PROMPT, "--max-tokens", 1, "--logits", logits_path, "--tokenizer", "byte")
        ids = torch.tensor([[1] + [b + 3 for b in PROMPT.encode()]])
        with torch.no_grad():
            logits = load_hf(hf)(ids).logits[0].numpy()
        self.assertLess(float(np.abs(logits - np.load(logits_path)).max()), TOL_FP32)


class RefusalTest(InteropTestCase):
    """Bad directories end with exit code != 0 and a message naming the file and the tensor or key."""

    def refused(self, args, *needles):
        p = run(*args, ok=False)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertNotIn("Traceback", p.stderr)
        for n in needles:
            self.assertIn(n, p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        return p

    def dir(self, name):
        return os.path.join(Fixture.tmp.name, "bad", name)

    def test_truncated_tensor_file(self):
        d = self.dir("truncated")
        fla_directory(d)
        path = os.path.join(d, "model.safetensors")
        data = open(path, "rb").read()
        open(path, "wb").write(data[:len(data) - 1000])
        self.refused(["import", d, "--out", self.dir("truncated_run")], "model.safetensors", "truncated")
        self.assertFalse(os.path.exists(os.path.join(self.dir("truncated_run"), "checkpoints", "step_00000000")))

    def test_missing_tensor(self):
        d = self.dir("missing")
        fla_directory(d, drop="model.layers.1.mlp.up_proj.weight")
        self.refused(["import", d, "--out", self.dir("missing_run")], "model.layers.1.mlp.up_proj.weight")

    def test_mismatched_shape(self):
        d = self.dir("mismatch")
        fla_directory(d)
        cfg = json.load(open(os.path.join(d, "config.json")))
        cfg["intermediate_size"] = 128
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
        self.refused(["import", d, "--out", self.dir("mismatch_run")], "model.safetensors",
                     "model.layers.0.mlp.down_proj.weight", "[32,256]", "[32,128]")

    def test_unrepresentable_settings(self):
        for key, value, needle in [("attn_impl", "naive_stochastic_softpick_attn", "attn_impl"),
                                   ("qk_norm", True, "qk_norm"), ("window_size", 512, "window_size"),
                                   ("model_type", "mamba", "model_type")]:
            with self.subTest(key=key):
                d = self.dir(f"unrep_{key}")
                fla_directory(d, **{key: value})
                self.refused(["import", d, "--out", self.dir(f"unrep_{key}_run")], "config.json", needle)

    def test_wrong_types_and_duplicate_sources(self):
        for key, value in [("hidden_size", 32.5), ("num_heads", "4"), ("tie_word_embeddings", "no")]:
            with self.subTest(key=key):
                d = self.dir(f"type_{key}")
                fla_directory(d, **{key: value})
                self.refused(["import", d, "--out", self.dir(f"type_{key}_run")], "config.json", key, "wrong type")
        d = self.dir("twice")
        fla_directory(d)
        from safetensors.torch import load_file as load_torch, save_file as save_torch
        t = load_torch(os.path.join(d, "model.safetensors"))
        t["model.embed_tokens.weight"] = t["model.embeddings.weight"].clone()
        save_torch(t, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        self.refused(["import", d, "--out", self.dir("twice_run")], "model.embeddings.weight",
                     "model.embed_tokens.weight", "both give")

    def test_sharded_directory_and_missing_shard(self):
        d = self.dir("sharded")
        tensors = fla_directory(d, attn_impl="parallel_attn")
        from safetensors.torch import load_file as load_torch, save_file as save_torch
        full = load_torch(os.path.join(d, "model.safetensors"))
        os.remove(os.path.join(d, "model.safetensors"))
        names = sorted(full)
        half = len(names) // 2
        shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
        weight_map = {}
        for f, ns in shards.items():
            save_torch({n: full[n] for n in ns}, os.path.join(d, f), metadata={"format": "pt"})
            weight_map.update({n: f for n in ns})
        json.dump({"metadata": {}, "weight_map": weight_map}, open(os.path.join(d, "model.safetensors.index.json"), "w"))
        out = self.dir("sharded_run")
        run("import", d, "--out", out)
        got = load_file(os.path.join(out, "checkpoints", "step_00000000", "model.safetensors"))
        self.assertTrue(np.array_equal(got["model.embed_tokens.weight"], tensors["model.embeddings.weight"]))
        os.remove(os.path.join(d, "model-00002-of-00002.safetensors"))
        self.refused(["import", d, "--out", self.dir("sharded_run2")], "model.safetensors.index.json",
                     "model-00002-of-00002.safetensors")

    def test_pytorch_bin_and_not_a_model(self):
        d = self.dir("bin")
        os.makedirs(d, exist_ok=True)
        json.dump({"model_type": "llama", "hidden_size": 32, "num_attention_heads": 4, "num_hidden_layers": 1,
                   "intermediate_size": 64, "vocab_size": 259}, open(os.path.join(d, "config.json"), "w"))
        open(os.path.join(d, "pytorch_model.bin"), "wb").write(b"\0" * 16)
        self.refused(["import", d, "--out", self.dir("bin_run")], "safetensors")
        self.refused(["import", self.dir("nowhere"), "--out", self.dir("nowhere_run")], "nowhere")
        e = self.dir("noconfig")
        os.makedirs(e, exist_ok=True)
        self.refused(["import", e, "--out", self.dir("noconfig_run")], "config.json")

    def test_import_into_a_run_with_checkpoints_is_refused(self):
        hf = _export(Fixture.runs["softpick"], "refuse_existing")
        before = sorted(os.listdir(os.path.join(Fixture.runs["softmax"], "checkpoints")))
        self.refused(["import", hf, "--out", Fixture.runs["softmax"]], "already has checkpoints")
        self.assertEqual(before, sorted(os.listdir(os.path.join(Fixture.runs["softmax"], "checkpoints"))))

    def test_export_into_a_non_empty_directory_is_refused(self):
        d = self.dir("occupied")
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, "precious.txt"), "w").write("keep me")
        self.refused(["export", Fixture.runs["softpick"], "--out", d], "--overwrite")
        self.assertEqual(os.listdir(d), ["precious.txt"])
        self.refused(["export", Fixture.runs["softpick"], "--out", d, "--dtype", "fp8"], "--dtype")
        # a trailing slash names the same directory; --overwrite replaces an export whole
        e = self.dir("slash")
        run("export", Fixture.runs["softpick"], "--out", e + "/")
        run("export", Fixture.runs["sink"], "--out", e + "/", "--overwrite")
        self.assertEqual(json.load(open(os.path.join(e, "config.json")))["softpick_attention"], "sink")
        self.assertEqual(sorted(x for x in os.listdir(os.path.dirname(e)) if x.startswith(".")), [])


def main():
    global SOFTPICK
    parser = argparse.ArgumentParser()
    parser.add_argument("--softpick", required=True)
    args, rest = parser.parse_known_args()
    SOFTPICK = testlib.softpick_binary(args.softpick)
    try:
        return testlib.run([ExportParityTest, DocSnippetTest, RoundTripTest, LmEvalTest, FlaImportTest, RefusalTest], rest)
    finally:
        if Fixture.tmp:
            Fixture.tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
