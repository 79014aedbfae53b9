#!/usr/bin/env python3
"""End-to-end test of scripts/prepare_data.py, read back with an independent shard reader.

    python3 tests/test_prepare_data.py [--softpick BUILD/softpick]

With --softpick, the shards are also checked with `softpick data inspect`. The tokenizer.json tests need
the `tokenizers` package and fail (not skip) without it. The last line is "N passed, M failed".
"""
import argparse
import collections
import gzip
import importlib.util
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import testlib

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "prepare_data.py"
SOFTPICK = None  # path of the softpick binary, from --softpick

# The shard format and the byte tokenizer, written out again here on purpose (docs/data.md).
MAGIC, HEADER_BYTES = 20240520, 1024
BOS, EOS, BYTE_OFFSET, BYTE_VOCAB = 1, 2, 3, 259


# ---------------------------------------------------------------------------------------------------
# An independent reader
# ---------------------------------------------------------------------------------------------------

def read_shard(path):
    """(version, tokens) of a shard; an AssertionError says what is wrong with it."""
    data = Path(path).read_bytes()
    assert len(data) >= HEADER_BYTES, f"{path}: {len(data)} bytes, shorter than the header"
    header = struct.unpack("<256i", data[:HEADER_BYTES])
    magic, version, count = header[:3]
    assert magic == MAGIC, f"{path}: magic {magic}"
    assert version in (1, 2), f"{path}: version {version}"
    assert not any(header[3:]), f"{path}: header ints 3..255 are not zero"
    width = 2 if version == 1 else 4
    assert len(data) == HEADER_BYTES + count * width, \
        f"{path}: header says {count} tokens but the file has {len(data)} bytes"
    return version, list(struct.unpack(f"<{count}{'H' if version == 1 else 'I'}", data[HEADER_BYTES:]))


def split_documents(tokens, where):
    """The token lists of the documents, each without its leading BOS."""
    assert tokens and tokens[0] == BOS, f"{where}: does not start with BOS"
    docs = []
    for t in tokens:
        if t == BOS:
            docs.append([])
        else:
            docs[-1].append(t)
    return docs


def byte_decode(ids, where):
    assert all(BYTE_OFFSET <= t < BYTE_VOCAB for t in ids), f"{where}: an id outside the byte range"
    return bytes(t - BYTE_OFFSET for t in ids).decode("utf-8")


def shards(out_dir, name, split):
    """The shard paths of a split, checked to be numbered 000000, 000001, ... without gaps."""
    paths = sorted(Path(out_dir).glob(f"{name}_{split}_*.bin"))
    assert [p.name for p in paths] == [f"{name}_{split}_{i:06d}.bin" for i in range(len(paths))], paths
    return paths


def split_docs(out_dir, name, split):
    """Token lists of all documents of a split, in order; every shard must start with BOS."""
    docs = []
    for p in shards(out_dir, name, split):
        docs += split_documents(read_shard(p)[1], p)
    return docs


def byte_texts(out_dir, name, split):
    return [byte_decode(d, f"{out_dir}/{name}_{split}") for d in split_docs(out_dir, name, split)]


def prepare(*args, rc=0, env=None):
    """Runs prepare_data.py; asserts the exit code; returns the CompletedProcess."""
    p = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                       env=env, timeout=300)
    assert p.returncode == rc, \
        f"exit code {p.returncode}, expected {rc}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def file_bytes(out_dir):
    return {p.name: p.read_bytes() for p in sorted(Path(out_dir).iterdir())}


# ---------------------------------------------------------------------------------------------------
# The test corpus
# ---------------------------------------------------------------------------------------------------

# Multi-byte characters, tabs, quotes, near-separators ("%%") and near-special tokens ("<unk", "s>").
WORDS = ["the", "softpick", "attention", "sink", "rectified", "softmax", "kurtosis", "naïve", "café",
         "日本語", "Ωmega", "🎉", "tab\there", 'quo"te', "back\\slash", "%%", "50%", "<unk", "s>",
         "\u00a0nbsp", "ß"]


def make_documents(n, seed):
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 14)))
                 for _ in range(rng.randint(1, 5))]
        if rng.random() < 0.2:
            lines.insert(0, "   indented " + lines[0])  # leading white space is kept
        docs.append(lines)
    return docs


def make_corpus(root):
    """Writes fortune-style files (and files that must be skipped) under root; returns (paths, texts)."""
    root.mkdir(parents=True)
    lines = make_documents(160, seed=5)
    texts = []
    # a.txt: LF lines; empty and blank entries between separators are dropped; the last entry has no newline
    a = ["".join(line + "\n" for line in d) for d in lines[:60]]
    a[-1] = a[-1].rstrip("\n")
    blank_entries = "%\n%\n   \n%\n"
    (root / "a.txt").write_text("%\n" + "%\n".join(a[:30]) + blank_entries + "%\n".join(a[30:]), "utf-8")
    texts += a
    # b: CRLF lines, kept exactly as in the file
    b = ["".join(line + "\r\n" for line in d) for d in lines[60:120]]
    (root / "b").write_bytes("%\r\n".join(b).encode("utf-8"))
    texts += b
    # c.txt.gz: compressed
    c = ["".join(line + "\n" for line in d) for d in lines[120:]]
    with gzip.open(root / "c.txt.gz", "wt", encoding="utf-8", newline="") as f:
        f.write("%\n".join(c) + "%\n")
    texts += c
    # skipped: a fortune index, a .u8 alias link, a binary file, a directory
    (root / "a.txt.dat").write_bytes(bytes(range(1, 200)))
    (root / "b.u8").symlink_to("b")
    (root / "binary").write_bytes(b"\x7fELF\0\0\0" + bytes(100))
    (root / "sub").mkdir()
    return sorted(root.iterdir()), texts


class Tmp:
    """A temporary directory shared by the tests of a class."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="prepare_data_test_"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------

class ByteTokenizerTest(unittest.TestCase):
    def test_every_byte_maps_to_byte_plus_3(self):
        spec = importlib.util.spec_from_file_location("prepare_data", SCRIPT)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        self.assertEqual(mod.BYTE_VOCAB_SIZE, BYTE_VOCAB)
        data = bytes(range(256))
        self.assertEqual(mod.byte_tokens_le(data, 2), struct.pack("<256H", *range(3, 259)))
        self.assertEqual(mod.byte_tokens_le(data, 4), struct.pack("<256I", *range(3, 259)))


class TextCorpusTest(Tmp, unittest.TestCase):
    VAL_DOCS = 12

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.inputs, cls.texts = make_corpus(cls.tmp / "corpus")
        cls.out = cls.tmp / "out"
        cls.first = prepare(*cls.args(cls.out, "--val-docs", cls.VAL_DOCS))

    @classmethod
    def args(cls, out, *extra):
        return ["--input", *cls.inputs, "--doc-separator", "%", "--out-dir", out, "--name", "t",
                "--no-progress", *extra]

    def test_header_and_size(self):
        paths = shards(self.out, "t", "train") + shards(self.out, "t", "val")
        self.assertEqual(len(paths), 2)
        for p in paths:
            version, tokens = read_shard(p)
            self.assertEqual(version, 1)
            self.assertEqual(tokens[0], BOS)
        self.assertEqual(sorted(os.listdir(self.out)), ["t_train_000000.bin", "t_val_000000.bin"])  # no .tmp

    def test_documents_round_trip(self):
        train, val = byte_texts(self.out, "t", "train"), byte_texts(self.out, "t", "val")
        self.assertEqual(len(val), self.VAL_DOCS)
        self.assertEqual(collections.Counter(train + val), collections.Counter(self.texts))
        # each split keeps the input order
        self.assertEqual(train, [t for t in self.texts if t in set(train)])
        self.assertIn("train", self.first.stdout)
        self.assertIn(f"{len(self.texts) - self.VAL_DOCS:,}", self.first.stdout)

    def test_skips_what_is_not_text(self):
        self.assertIn("skipped 4 input(s)", self.first.stderr)

    def test_split_is_deterministic(self):
        again = self.tmp / "again"
        prepare(*self.args(again, "--val-docs", self.VAL_DOCS))
        self.assertEqual(file_bytes(again), file_bytes(self.out))
        other = self.tmp / "other_seed"
        prepare(*self.args(other, "--val-docs", self.VAL_DOCS, "--seed", 80))
        val, other_val = byte_texts(self.out, "t", "val"), byte_texts(other, "t", "val")
        self.assertNotEqual(collections.Counter(val), collections.Counter(other_val))
        self.assertEqual(collections.Counter(byte_texts(other, "t", "train") + other_val),
                         collections.Counter(self.texts))

    def test_val_fraction(self):
        out = self.tmp / "fraction"
        prepare(*self.args(out, "--val-fraction", 0.1))
        self.assertEqual(len(byte_texts(out, "t", "val")), round(0.1 * len(self.texts)))
        none = self.tmp / "no_val"
        prepare(*self.args(none, "--val-fraction", 0))
        self.assertEqual(shards(none, "t", "val"), [])
        self.assertEqual(len(byte_texts(none, "t", "train")), len(self.texts))

    def test_shard_rollover_and_stale_shards(self):
        out, limit = self.tmp / "rollover", 2000
        prepare(*self.args(out, "--shard-tokens", limit, "--val-docs", 40))
        train = shards(out, "t", "train")
        self.assertGreaterEqual(len(train), 3)
        self.assertGreaterEqual(len(shards(out, "t", "val")), 2)
        counts = [len(read_shard(p)[1]) for p in train]
        self.assertTrue(all(c <= limit for c in counts), counts)
        # a shard is closed only before a document that would not fit
        for p, nxt in zip(train, train[1:]):
            first_doc = len(split_documents(read_shard(nxt)[1], nxt)[0]) + 1
            self.assertGreater(len(read_shard(p)[1]) + first_doc, limit)
        texts = byte_texts(out, "t", "train") + byte_texts(out, "t", "val")
        self.assertEqual(collections.Counter(texts), collections.Counter(self.texts))
        # a second run with bigger shards replaces the first one's, leaving none of the old numbers behind
        run = prepare(*self.args(out, "--val-docs", 40))
        self.assertEqual(len(shards(out, "t", "train")), 1)
        self.assertEqual(len(shards(out, "t", "val")), 1)
        self.assertIn("removed", run.stdout)
        self.assertFalse([p for p in os.listdir(out) if p.endswith(".tmp")])

    def test_append_eos_and_uint32(self):
        out = self.tmp / "eos32"
        prepare(*self.args(out, "--val-docs", self.VAL_DOCS, "--append-eos", "--dtype", "uint32"))
        for p in shards(out, "t", "train") + shards(out, "t", "val"):
            self.assertEqual(read_shard(p)[0], 2)
        for split in ("train", "val"):
            docs = split_docs(out, "t", split)
            self.assertTrue(all(d and d[-1] == EOS for d in docs))
            self.assertEqual([d[:-1] for d in docs], split_docs(self.out, "t", split))

    def test_jsonl(self):
        path = self.tmp / "docs.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            for i, t in enumerate(self.texts):
                f.write(json.dumps({"id": i, "content": t}) + "\n")
                if i == 3:
                    f.write("\n" + json.dumps({"id": -1, "content": ""}) + "\n")  # both ignored
        out = self.tmp / "jsonl"
        prepare("--input", path, "--text-field", "content", "--out-dir", out, "--name", "j",
                "--val-docs", 3, "--no-progress")
        texts = byte_texts(out, "j", "train") + byte_texts(out, "j", "val")
        self.assertEqual(collections.Counter(texts), collections.Counter(self.texts))

    def test_parquet(self):
        try:
            import pyarrow
            import pyarrow.parquet as pq
        except ImportError:
            pyarrow = None
        path = self.tmp / "docs.parquet"
        out = self.tmp / "parquet"
        args = ["--input", path, "--out-dir", out, "--name", "p", "--val-docs", 3, "--no-progress"]
        if pyarrow is None:
            path.write_bytes(b"PAR1")
            run = prepare(*args, rc=2)
            self.assertIn("pip install pyarrow", run.stderr)
            return
        pq.write_table(pyarrow.table({"text": self.texts}), path, row_group_size=50)
        prepare(*args)
        texts = byte_texts(out, "p", "train") + byte_texts(out, "p", "val")
        self.assertEqual(collections.Counter(texts), collections.Counter(self.texts))

    def test_hf_dataset_without_network(self):
        env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
        run = prepare("--hf-dataset", self.tmp / "no_such_dataset", "--out-dir", self.tmp / "hf",
                      "--name", "h", "--no-progress", rc=2, env=env)
        self.assertEqual(len(run.stderr.strip().splitlines()), 1, run.stderr)
        if importlib.util.find_spec("datasets") is None:
            self.assertIn("pip install datasets", run.stderr)
        else:
            self.assertIn("no_such_dataset", run.stderr)

    def test_progress_in_a_log(self):
        # stderr is a pipe here, so the progress comes as plain lines (tqdm is used on a terminal only)
        run = prepare("--input", *self.inputs, "--doc-separator", "%", "--out-dir", self.tmp / "bar",
                      "--name", "t")
        n = len(self.texts)
        self.assertIn(f"tokenizing: {n:,}/{n:,} (100.0%) docs", run.stderr)
        self.assertIn("tokens", run.stderr)

    def test_errors_are_one_line(self):
        bad = self.tmp / "bad"
        bad.mkdir(exist_ok=True)
        (bad / "empty.txt").write_text("")
        (bad / "blank.txt").write_text(" \n\t\n%\n\n")
        (bad / "latin1.txt").write_bytes(b"ok\ncaf\xe9\n")
        (bad / "nofield.jsonl").write_text('{"text": "a"}\n{"body": "b"}\n')
        good = self.inputs[0]
        out = ["--out-dir", self.tmp / "err", "--name", "e", "--no-progress"]
        cases = [
            (["--input", bad / "missing.txt", *out], "missing.txt"),
            (["--input", good, "--format", "xml", *out], "invalid choice"),
            (["--input", bad / "empty.txt", bad / "blank.txt", "--doc-separator", "%", *out], "no documents"),
            (["--input", good, "--tokenizer", bad / "tokenizer.json", *out], "tokenizer file"),
            (["--input", bad / "latin1.txt", *out], "latin1.txt: invalid UTF-8 at byte offset 6"),
            (["--input", bad / "nofield.jsonl", *out], "nofield.jsonl:2"),
            (["--input", good, "--val-docs", 10**6, *out], "--val-docs"),
            (["--input", good, "--bos-id", 5, *out], "fixed at 1"),
            (["--input", good, "--doc-separator", "%", "--format", "jsonl", *out], "--doc-separator"),
        ]
        for args, needle in cases:
            with self.subTest(needle=needle):
                run = prepare(*args, rc=2)
                self.assertEqual(len(run.stderr.strip().splitlines()), 1, run.stderr)
                self.assertIn(needle, run.stderr)
        self.assertFalse((self.tmp / "err").exists() and os.listdir(self.tmp / "err"))


class SoftpickInspectTest(Tmp, unittest.TestCase):
    """`softpick data inspect` accepts what prepare_data.py writes and rejects a truncated shard."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        inputs, cls.texts = make_corpus(cls.tmp / "corpus")
        cls.out = cls.tmp / "out"
        prepare("--input", *inputs, "--doc-separator", "%", "--out-dir", cls.out, "--name", "s",
                "--shard-tokens", 3000, "--val-docs", 10, "--no-progress")

    def inspect(self, *args):
        # --decode N may end inside a multi-byte character: read the output leniently
        return subprocess.run([SOFTPICK, "data", "inspect", *map(str, args)], capture_output=True, text=True,
                              errors="backslashreplace", timeout=120)

    def test_valid_shards(self):
        paths = shards(self.out, "s", "train") + shards(self.out, "s", "val")
        run = self.inspect(*paths, "--vocab-size", BYTE_VOCAB)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        for p in paths:
            run = self.inspect(p, "--vocab-size", BYTE_VOCAB, "--decode", 64)
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    def test_uint32_shard(self):
        out = self.tmp / "u32"
        prepare("--input", self.tmp / "corpus" / "a.txt", "--doc-separator", "%", "--out-dir", out,
                "--name", "w", "--dtype", "uint32", "--val-fraction", 0, "--no-progress")
        run = self.inspect(*shards(out, "w", "train"), "--vocab-size", BYTE_VOCAB)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    def test_truncated_shard_is_rejected(self):
        src = shards(self.out, "s", "train")[0]
        cut = self.tmp / "cut_copy.bin"
        data = src.read_bytes()
        cut.write_bytes(data[: len(data) - 3])
        run = self.inspect(cut, "--vocab-size", BYTE_VOCAB)
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("cut_copy.bin", run.stderr)


class TokenizerJsonTest(Tmp, unittest.TestCase):
    """The tokenizer.json path: ids must equal tokenizers' own encode(..., add_special_tokens=False)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            import tokenizers
            cls.tokenizers = tokenizers
        except ImportError:
            cls.tokenizers = None

    def setUp(self):
        if self.tokenizers is None:
            self.fail("the tokenizer.json tests need the 'tokenizers' package: pip install tokenizers")

    def train_bpe(self, texts, path):
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
        tok.train_from_iterator(texts, trainer)
        tok.save(str(path))
        return Tokenizer.from_file(str(path))

    def test_bpe_ids_match_the_library(self):
        inputs, texts = make_corpus(self.tmp / "corpus")
        path = self.tmp / "tokenizer.json"
        tok = self.train_bpe(texts, path)
        self.assertEqual(tok.token_to_id("<s>"), BOS)
        out = self.tmp / "bpe"
        args = ["--input", *inputs, "--doc-separator", "%", "--tokenizer", path, "--name", "b",
                "--val-docs", 5, "--shard-tokens", 4000, "--no-progress"]
        run = prepare(*args, "--out-dir", out, "--workers", 2)
        one = self.tmp / "bpe_one_worker"
        prepare(*args, "--out-dir", one, "--workers", 1)
        self.assertEqual(file_bytes(one), file_bytes(out))
        self.assertIn("vocab 300", run.stdout)
        for p in shards(out, "b", "train") + shards(out, "b", "val"):
            self.assertEqual(read_shard(p)[0], 1)
        got = split_docs(out, "b", "train") + split_docs(out, "b", "val")
        want = [tok.encode(t, add_special_tokens=False).ids for t in texts]
        self.assertEqual(collections.Counter(map(tuple, got)), collections.Counter(map(tuple, want)))
        self.assertEqual(len(split_docs(out, "b", "val")), 5)

    def test_token_id_that_does_not_fit(self):
        from tokenizers import Tokenizer, models, pre_tokenizers
        tok = Tokenizer(models.WordLevel({"<unk>": 0, "<s>": 1, "</s>": 2, "small": 3, "big": 70000},
                                         unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        path = self.tmp / "wide.json"
        tok.save(str(path))
        text = self.tmp / "wide.txt"
        text.write_text("big small big what\n")
        out = self.tmp / "wide"
        args = ["--input", text, "--tokenizer", path, "--out-dir", out, "--name", "w", "--val-fraction", 0,
                "--no-progress"]
        prepare(*args)  # auto picks uint32 for ids up to 70000
        version, tokens = read_shard(out / "w_train_000000.bin")
        self.assertEqual((version, tokens), (2, [BOS, 70000, 3, 70000, 0]))
        before = file_bytes(out)
        run = prepare(*args, "--dtype", "uint16", rc=2)
        self.assertEqual(len(run.stderr.strip().splitlines()), 1, run.stderr)
        self.assertIn("token id 70000 does not fit uint16", run.stderr)
        self.assertEqual(file_bytes(out), before)  # the failed run left the earlier shards alone, no .tmp


def main():
    global SOFTPICK
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--softpick", metavar="PATH",
                    help="the softpick binary: also check the shards with `softpick data inspect`")
    args, rest = ap.parse_known_args()
    SOFTPICK = testlib.softpick_binary(args.softpick)
    classes = [ByteTokenizerTest, TextCorpusTest, TokenizerJsonTest]
    return testlib.run(classes + ([SoftpickInspectTest] if SOFTPICK else []), rest)

if __name__ == "__main__":
    sys.exit(main())
