#!/usr/bin/env python3
"""Tokenize documents into softpick token shards (the format is in docs/data.md).

    python3 scripts/prepare_data.py --input /usr/share/games/fortunes/* --doc-separator % \\
        --out-dir data/demo --name demo --val-fraction 0.05

Reads documents from text, JSONL or parquet files or a Hugging Face dataset, tokenizes them with the
byte tokenizer or a Hugging Face tokenizer.json, splits them by document into train and val, and writes
DIR/NAME_train_000000.bin, ... and DIR/NAME_val_000000.bin, ...

Every document is written as BOS + its tokens (+ EOS with --append-eos). The split is deterministic:
val = random.Random(seed).sample(range(n_docs), n_val), where n_docs counts the documents read (a first
pass over the input counts them) and n_val comes from --val-docs or --val-fraction. Both splits keep the
input order. Shards are written to NAME.bin.tmp and renamed into place only when the whole run has
succeeded, so a failed run leaves an earlier data set as it was.

The byte-tokenizer path needs only the standard library. A tokenizer.json needs `tokenizers`, parquet
input needs `pyarrow`, --hf-dataset needs `datasets`; each is imported only when used.
"""
import argparse
import array
import gzip
import json
import multiprocessing
import os
import random
import re
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from itertools import islice

PROG = "prepare_data.py"

# Shard format (must match src/data/shard.h): 256 little-endian int32, then the tokens.
SHARD_MAGIC = 20240520
HEADER_INTS = 256
HEADER_BYTES = 4 * HEADER_INTS
INT32_MAX = 2**31 - 1
VERSION_OF_WIDTH = {2: 1, 4: 2}  # bytes per token -> header version
DTYPE_WIDTH = {"uint16": 2, "uint32": 4}

# The byte tokenizer (must match the C++ side): 0 <unk>, 1 <s>, 2 </s>, then byte b -> id b + 3.
BYTE_UNK_ID, BYTE_BOS_ID, BYTE_EOS_ID, BYTE_OFFSET = 0, 1, 2, 3
BYTE_VOCAB_SIZE = 256 + BYTE_OFFSET

DOCS_PER_TASK = 256      # documents sent to a worker at once (fewer for a small input, to use every worker)
TASKS_IN_FLIGHT = 4      # per worker; bounds memory when the input is far larger than RAM
FORMATS = ("auto", "text", "jsonl", "parquet")
FORTUNE_SIDE_FILES = (".dat", ".u8")  # strfile index files and the UTF-8 alias links of fortune(6)


class PrepareError(Exception):
    """An error the user can act on: printed as one line, exit code 2."""


def pip_hint(module, package, what):
    return PrepareError(f"{what} needs the Python package '{package}' (import {module} failed): "
                        f"pip install {package}")


# ---------------------------------------------------------------------------------------------------
# Input documents
# ---------------------------------------------------------------------------------------------------

def open_binary(path):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def guess_format(path):
    base = path[:-3] if path.endswith(".gz") else path
    if base.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if base.endswith(".parquet"):
        return "parquet"
    return "text"


def looks_like_text(path):
    # NUL bytes do not occur in text; this is how `grep` and `git` tell binary files too.
    with open_binary(path) as f:
        return b"\0" not in f.read(8192)


def decode_utf8(raw, path, offset, errors):
    try:
        return raw.decode("utf-8", errors)
    except UnicodeDecodeError as e:
        raise PrepareError(f"{path}: invalid UTF-8 at byte offset {offset + e.start} ({e.reason}); "
                           f"fix the file or pass --encoding-errors replace") from None


def has_text(doc):
    return bool(doc) and not doc.isspace()


def read_text(path, separator, errors):
    """One document per file, or the lines between separator lines (their newlines kept)."""
    with open_binary(path) as f:
        if separator is None:
            doc = decode_utf8(f.read(), path, 0, errors)
            if has_text(doc):
                yield doc
            return
        lines, offset = [], 0
        for raw in f:  # binary lines keep "\r\n" exactly as in the file
            line = decode_utf8(raw, path, offset, errors)
            offset += len(raw)
            if line.rstrip("\r\n") == separator:
                doc = "".join(lines)
                lines = []
                if has_text(doc):
                    yield doc
            else:
                lines.append(line)
        doc = "".join(lines)
        if has_text(doc):
            yield doc


def read_jsonl(path, field):
    with open_binary(path) as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError as e:  # also UnicodeDecodeError
                raise PrepareError(f"{path}:{lineno}: not a JSON object ({e})") from None
            text = record.get(field) if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise PrepareError(f"{path}:{lineno}: no string field '{field}' (choose the field with "
                                   f"--text-field)")
            if has_text(text):
                yield text


def read_parquet(path, field):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise pip_hint("pyarrow", "pyarrow", "--format parquet") from None
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:
        raise PrepareError(f"{path}: cannot read as parquet ({e})") from None
    if field not in pf.schema_arrow.names:
        raise PrepareError(f"{path}: no column '{field}' (columns: {', '.join(pf.schema_arrow.names)}); "
                           f"choose one with --text-field")
    for batch in pf.iter_batches(columns=[field], batch_size=1024):
        for text in batch.column(0).to_pylist():
            if has_text(text):
                yield text


class FileSource:
    """Documents from local files, in the order given."""

    def __init__(self, paths, fmt, separator, text_field, encoding_errors):
        self.files, skipped = [], []  # files: (path, format)
        for path in paths:
            if not os.path.exists(path):
                raise PrepareError(f"input file {path} not found")
            f = guess_format(path) if fmt == "auto" else fmt
            if f == "text" and (path.endswith(FORTUNE_SIDE_FILES) or not os.path.isfile(path)
                                or not looks_like_text(path)):
                skipped.append(path)
                continue
            if not os.path.isfile(path):
                raise PrepareError(f"input {path} is not a regular file")
            self.files.append((path, f))
        if skipped:
            names = ", ".join(os.path.basename(p) for p in skipped[:4])
            names += ", ..." if len(skipped) > 4 else ""
            print(f"{PROG}: skipped {len(skipped)} input(s) that are not text documents ({names})",
                  file=sys.stderr)
        self.separator, self.text_field, self.errors = separator, text_field, encoding_errors

    def describe(self):
        return f"{len(self.files)} file(s)"

    def documents(self):
        for path, fmt in self.files:
            if fmt == "text":
                yield from read_text(path, self.separator, self.errors)
            elif fmt == "jsonl":
                yield from read_jsonl(path, self.text_field)
            else:
                yield from read_parquet(path, self.text_field)


class HFSource:
    """Documents streamed from a Hugging Face dataset (each pass streams it again)."""

    def __init__(self, name, config, split, text_field):
        try:
            import datasets  # noqa: F401  (checked here so the error comes before any work)
        except ImportError:
            raise pip_hint("datasets", "datasets", "--hf-dataset") from None
        self.name, self.config, self.split, self.text_field = name, config, split, text_field

    def describe(self):
        return f"{self.name}" + (f" ({self.config})" if self.config else "") + f" split {self.split}"

    def documents(self):
        import datasets
        try:
            ds = datasets.load_dataset(self.name, self.config, split=self.split, streaming=True)
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PrepareError(f"cannot open Hugging Face dataset {self.describe()}: {first}") from None
        for i, row in enumerate(ds):
            text = row.get(self.text_field)
            if not isinstance(text, str):
                raise PrepareError(f"{self.describe()}: row {i} has no string field '{self.text_field}' "
                                   f"(choose the field with --text-field)")
            if has_text(text):
                yield text


# ---------------------------------------------------------------------------------------------------
# Tokenizers and the worker processes
# ---------------------------------------------------------------------------------------------------

# Byte b -> the low and high byte of the little-endian token b + 3; bytes.translate does the mapping
# in C, which is far faster than a Python loop over the bytes of every document.
_BYTE_LOW = bytes((b + BYTE_OFFSET) & 0xFF for b in range(256))
_BYTE_HIGH = bytes((b + BYTE_OFFSET) >> 8 for b in range(256))
_ARRAY_CODE = {2: "H", 4: "I" if array.array("I").itemsize == 4 else "L"}


def byte_tokens_le(data, width):
    """The byte tokenizer's ids for `data`, as little-endian integers of `width` bytes."""
    out = bytearray(width * len(data))
    out[0::width] = data.translate(_BYTE_LOW)
    out[1::width] = data.translate(_BYTE_HIGH)
    return bytes(out)


def ids_le(ids, width, where):
    """Token ids as little-endian integers of `width` bytes; a PrepareError if one does not fit."""
    try:
        a = array.array(_ARRAY_CODE[width], ids)
    except OverflowError:
        bad = max(ids) if max(ids) >= 2 ** (8 * width) else min(ids)
        dtype = "uint16" if width == 2 else "uint32"
        raise PrepareError(f"{where}: token id {bad} does not fit {dtype}; use --dtype uint32 (or auto)") \
            from None
    if sys.byteorder == "big":
        a.byteswap()
    return a.tobytes()


def load_hf_tokenizer(path):
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise pip_hint("tokenizers", "tokenizers", "a tokenizer.json") from None
    try:
        tok = Tokenizer.from_file(path)
    except Exception as e:
        raise PrepareError(f"cannot load tokenizer {path}: {e}") from None
    # A tokenizer.json may carry truncation or padding settings for fine-tuning; pretraining wants neither.
    tok.no_truncation()
    tok.no_padding()
    return tok


@dataclass(frozen=True)
class EncodeSpec:
    """All a worker needs to encode documents (picklable)."""
    tokenizer: str          # "byte" or the path of a tokenizer.json
    width: int              # bytes per token in the shard
    bos_id: int
    eos_id: int | None      # appended to every document when not None


class Encoder:
    def __init__(self, spec):
        self.spec = spec
        self.hf = None if spec.tokenizer == "byte" else load_hf_tokenizer(spec.tokenizer)
        self.bos = ids_le([spec.bos_id], spec.width, "--bos-id")
        self.eos = b"" if spec.eos_id is None else ids_le([spec.eos_id], spec.width, "--eos-id")

    def encode(self, first_index, texts):
        """Shard bytes (BOS + tokens [+ EOS]) for each text; document numbers start at first_index."""
        w = self.spec.width
        if self.hf is None:
            return [self.bos + byte_tokens_le(t.encode("utf-8"), w) + self.eos for t in texts]
        encode_batch = getattr(self.hf, "encode_batch_fast", self.hf.encode_batch)  # fast: no offsets
        encodings = encode_batch(texts, add_special_tokens=False)
        return [self.bos + ids_le(e.ids, w, f"document {first_index + k}") + self.eos
                for k, e in enumerate(encodings)]


_worker_encoder = None


def _init_worker(spec):
    global _worker_encoder
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # parallelism comes from the processes
    _worker_encoder = Encoder(spec)


def _encode_task(task):
    return _worker_encoder.encode(*task)


def tasks_of(docs, per_task):
    """(number of the first document, texts) in groups of per_task."""
    first = 0
    while batch := list(islice(docs, per_task)):
        yield first, batch
        first += len(batch)


def encoded_documents(docs, spec, workers, per_task):
    """Yields the shard bytes of each document, in input order."""
    tasks = tasks_of(docs, per_task)
    if workers <= 1:
        enc = Encoder(spec)
        for task in tasks:
            yield from enc.encode(*task)
        return
    # spawn, not fork: the parent may hold threads (datasets, tokenizers) that a fork would copy mid-state.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(spec,)) as pool:
        # apply_async with a bounded queue rather than imap: imap reads the whole input ahead of the workers.
        pending = deque()
        for task in tasks:
            pending.append(pool.apply_async(_encode_task, (task,)))
            if len(pending) >= TASKS_IN_FLIGHT * workers:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()


# ---------------------------------------------------------------------------------------------------
# Output shards
# ---------------------------------------------------------------------------------------------------

def shard_header(version, count):
    h = array.array("i", [0] * HEADER_INTS)
    h[0], h[1], h[2] = SHARD_MAGIC, version, count
    if sys.byteorder == "big":
        h.byteswap()
    return h.tobytes()


class ShardWriter:
    """Writes one split as NAME_SPLIT_000000.bin, ...; a shard is closed before the document that would
    take it past shard_tokens, so every shard starts with BOS (a longer document gets a shard of its own)."""

    def __init__(self, out_dir, name, split, shard_tokens, width):
        self.out_dir, self.name, self.split = out_dir, name, split
        self.shard_tokens, self.width = shard_tokens, width
        self.paths = []          # final paths of finished shards, still under their .tmp names
        self.file, self.count = None, 0
        self.documents = self.tokens = 0

    def path(self, index):
        return os.path.join(self.out_dir, f"{self.name}_{self.split}_{index:06d}.bin")

    def add(self, payload):
        n = len(payload) // self.width
        if self.file is not None and self.count + n > self.shard_tokens:
            self._close()
        if self.file is None:
            self.file = open(self.path(len(self.paths)) + ".tmp", "wb")
            self.file.write(bytes(HEADER_BYTES))  # the header is written when the count is known
            self.count = 0
        if self.count + n > INT32_MAX:
            raise PrepareError(f"document {self.documents} of the {self.split} split has {n} tokens, more "
                               f"than a shard can hold (the header's count is an int32)")
        self.file.write(payload)
        self.count += n
        self.documents += 1
        self.tokens += n

    def _close(self):
        f, self.file = self.file, None
        f.seek(0)
        f.write(shard_header(VERSION_OF_WIDTH[self.width], self.count))
        f.flush()
        os.fsync(f.fileno())
        f.close()
        self.paths.append(self.path(len(self.paths)))

    def finish(self):
        if self.file is not None:
            self._close()

    def discard(self):
        """Removes everything this writer made (after an error)."""
        if self.file is not None:
            self.file.close()
            self.paths.append(self.path(len(self.paths)))
            self.file = None
        for p in self.paths:
            if os.path.exists(p + ".tmp"):
                os.remove(p + ".tmp")

    def commit(self):
        """Moves the new shards into place and removes shards of an earlier run beyond the new ones.
        Returns the removed paths."""
        for p in self.paths:
            os.replace(p + ".tmp", p)
        pattern = re.compile(rf"{re.escape(self.name)}_{self.split}_(\d{{6,}})\.bin")
        stale = []
        for entry in sorted(os.listdir(self.out_dir)):
            m = pattern.fullmatch(entry)
            if m and int(m.group(1)) >= len(self.paths):
                stale.append(os.path.join(self.out_dir, entry))
                os.remove(stale[-1])
        return stale


# ---------------------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------------------

class Progress:
    """Documents done (of total) and tokens written, on stderr: a tqdm bar on a terminal when tqdm is
    installed, else a self-drawn line (redrawn on a terminal, printed every 30 s into a log)."""

    def __init__(self, desc, total, enabled):
        self.desc, self.total, self.enabled = desc, total, enabled
        self.docs = self.tokens = self.shown_docs = 0
        self.start = self.last = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.bar = None
        if enabled and self.tty:  # in a log file, tqdm's redraws are noise: print a line now and then
            try:
                from tqdm import tqdm
                self.bar = tqdm(desc=desc, total=total, unit="doc", file=sys.stderr, dynamic_ncols=True)
            except ImportError:
                pass

    def update(self, docs, tokens=0):
        self.docs += docs
        self.tokens += tokens
        now = time.monotonic()
        # terminal: redraw often; log file: a line now and then
        if self.enabled and now - self.last >= (0.2 if self.tty or self.bar is not None else 30.0):
            self._show(now)

    def _show(self, now, final=False):
        self.last = now
        if self.bar is not None:
            self.bar.update(self.docs - self.shown_docs)
            self.shown_docs = self.docs
            if self.tokens:
                self.bar.set_postfix_str(f"{self.tokens:,} tokens", refresh=False)
            return
        rate = self.docs / max(now - self.start, 1e-9)
        of = f"/{self.total:,} ({100.0 * self.docs / self.total:.1f}%)" if self.total else ""
        toks = ""
        if self.tokens:
            toks = f", {self.tokens:,} tokens ({self.tokens / max(now - self.start, 1e-9):,.0f}/s)"
        line = f"{self.desc}: {self.docs:,}{of} docs, {rate:,.0f} docs/s{toks}"
        end = "\n" if final or not self.tty else ""
        print(("\r" if self.tty else "") + line, end=end, file=sys.stderr, flush=True)

    def close(self):
        if self.enabled:
            self._show(time.monotonic(), final=True)
            if self.bar is not None:
                self.bar.close()


# ---------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------

def resolve_tokenizer(args):
    """(spec tokenizer, name, vocab size, bos id, eos id) from the options."""
    if args.tokenizer == "byte":
        for what, value, fixed in (("bos", args.bos_id, BYTE_BOS_ID), ("eos", args.eos_id, BYTE_EOS_ID)):
            if value is not None and value != fixed:
                raise PrepareError(f"the byte tokenizer's {what.upper()} id is fixed at {fixed}; "
                                   f"drop --{what}-id")
        return "byte", "byte", BYTE_VOCAB_SIZE, BYTE_BOS_ID, BYTE_EOS_ID
    path = args.tokenizer
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
    if not os.path.isfile(path):
        raise PrepareError(f"tokenizer file {path} not found (give 'byte' or the path of a Hugging Face "
                           f"tokenizer.json)")
    tok = load_hf_tokenizer(path)
    # ids need not be contiguous, so the vocabulary "size" the model needs is the largest id + 1
    vocab = max(tok.get_vocab(with_added_tokens=True).values()) + 1

    def id_of(token, fallback):
        found = tok.token_to_id(token)
        return fallback if found is None else found

    bos = args.bos_id if args.bos_id is not None else id_of("<s>", 1)
    eos = args.eos_id if args.eos_id is not None else id_of("</s>", 2)
    return os.path.abspath(path), path, vocab, bos, eos


def val_count(args, n_docs):
    if args.val_docs is not None:
        if args.val_docs >= n_docs:
            raise PrepareError(f"--val-docs {args.val_docs} asks for at least as many validation documents "
                               f"as there are documents ({n_docs}); the train split would be empty")
        return args.val_docs
    if args.val_fraction == 0 or n_docs < 2:
        return 0
    return min(max(1, round(args.val_fraction * n_docs)), n_docs - 1)


def run(args):
    if args.hf_dataset:
        source = HFSource(args.hf_dataset, args.hf_name, args.hf_split, args.text_field)
    else:
        source = FileSource(args.input, args.format, args.doc_separator, args.text_field,
                            args.encoding_errors)
    tokenizer, tok_name, vocab, bos, eos = resolve_tokenizer(args)
    dtype = args.dtype if args.dtype != "auto" else ("uint16" if vocab <= 2**16 else "uint32")
    spec = EncodeSpec(tokenizer, DTYPE_WIDTH[dtype], bos, eos if args.append_eos else None)

    def documents():
        docs = source.documents()
        return islice(docs, args.max_docs) if args.max_docs is not None else docs

    # Pass 1: count the documents, which the seeded split needs; reading is cheap next to tokenizing.
    counting = Progress("counting documents", None, args.progress)
    n_docs = 0
    for _ in documents():
        n_docs += 1
        counting.update(1)
    counting.close()
    if n_docs == 0:
        raise PrepareError(f"no documents found in {source.describe()} (empty, or all whitespace)")
    n_val = val_count(args, n_docs)
    val = set(random.Random(args.seed).sample(range(n_docs), n_val))

    # Pass 2: tokenize in worker processes and route each document, in input order, to its split.
    os.makedirs(args.out_dir, exist_ok=True)
    writers = {s: ShardWriter(args.out_dir, args.name, s, args.shard_tokens, spec.width)
               for s in ("train", "val")}
    # The byte tokenizer is a table lookup: sending the text to a worker costs more than encoding it here.
    workers = 1 if spec.tokenizer == "byte" else args.workers
    per_task = max(1, min(DOCS_PER_TASK, n_docs // (TASKS_IN_FLIGHT * workers)))
    workers = min(workers, -(-n_docs // per_task))
    progress = Progress("tokenizing", n_docs, args.progress)
    encoded = encoded_documents(documents(), spec, workers, per_task)
    try:
        seen = 0
        for i, payload in enumerate(encoded):
            writers["val" if i in val else "train"].add(payload)
            progress.update(1, len(payload) // spec.width)
            seen = i + 1
        if seen != n_docs:
            raise PrepareError(f"{source.describe()} gave {n_docs} documents when counted but {seen} when "
                               f"read again; the input changed during the run")
        for w in writers.values():
            w.finish()
    except BaseException:
        encoded.close()  # stops the worker pool now rather than when the generator is collected
        for w in writers.values():
            w.discard()
        raise
    progress.close()
    stale = [p for w in writers.values() for p in w.commit()]

    print(f"{source.describe()} -> {args.out_dir} (tokenizer {tok_name}, vocab {vocab}, bos {bos}"
          f"{f', eos {eos} appended' if args.append_eos else ''}, {dtype} tokens, seed {args.seed})")
    print(f"{'split':<6} {'documents':>12} {'tokens':>16} {'files':>6}")
    for s, w in writers.items():
        files = ""
        if w.paths:
            files = f"  {w.paths[0]}" + (f" .. {os.path.basename(w.paths[-1])}" if len(w.paths) > 1 else "")
        print(f"{s:<6} {w.documents:>12,} {w.tokens:>16,} {len(w.paths):>6}{files}")
    if stale:
        names = ", ".join(os.path.basename(p) for p in stale)
        print(f"removed {len(stale)} shard(s) left from an earlier run: {names}")


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------

class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit code 2, like every other error of this script
        self.exit(2, f"{PROG}: error: {message} (see --help)\n")


def positive(kind, limit=None):
    def parse(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {s!r}")
        if v <= 0 or (limit is not None and v > limit):
            raise argparse.ArgumentTypeError(f"{s} is out of range (1 .. {limit or 'inf'})")
        return v
    return parse


def fraction(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}")
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"{s} is not in [0, 1)")
    return v


def parse_args(argv):
    p = Parser(prog=PROG, description="Tokenize documents into token shards (see docs/data.md).")
    src = p.add_argument_group("input")
    one = src.add_mutually_exclusive_group(required=True)
    one.add_argument("--input", nargs="+", metavar="PATH", help="input files (.gz is read transparently)")
    one.add_argument("--hf-dataset", metavar="NAME", help="a Hugging Face dataset, streamed (needs datasets)")
    src.add_argument("--hf-name", metavar="CONFIG", help="the dataset's configuration, e.g. sample-100BT")
    src.add_argument("--hf-split", default="train", metavar="SPLIT",
                     help="the dataset split to read (default: %(default)s)")
    src.add_argument("--format", default="auto", choices=FORMATS,
                     help="input format (default: auto: .jsonl/.ndjson/.json -> jsonl, .parquet -> parquet, "
                          "else text)")
    src.add_argument("--doc-separator", metavar="LINE",
                     help="text: a line equal to this separates documents (fortune files use %%); "
                          "without it every file is one document")
    src.add_argument("--text-field", default="text", metavar="FIELD",
                     help="jsonl/parquet/hf: the field holding the text (default: %(default)s)")
    src.add_argument("--encoding-errors", default="strict", choices=("strict", "replace"),
                     help="text: what to do with invalid UTF-8 (default: %(default)s)")
    src.add_argument("--max-docs", type=positive(int), metavar="N", help="use only the first N documents")
    tok = p.add_argument_group("tokens")
    tok.add_argument("--tokenizer", default="byte", metavar="byte|PATH",
                     help="'byte' (259 ids: <unk> <s> </s> + 256 bytes; the default) or a Hugging Face "
                          "tokenizer.json")
    tok.add_argument("--bos-id", type=int, metavar="N",
                     help="BOS id for a tokenizer.json (default: the id of <s>, else 1)")
    tok.add_argument("--eos-id", type=int, metavar="N",
                     help="EOS id for a tokenizer.json (default: the id of </s>, else 2)")
    tok.add_argument("--append-eos", action="store_true", help="end every document with EOS")
    tok.add_argument("--dtype", default="auto", choices=("auto", "uint16", "uint32"),
                     help="token type in the shards (default: auto: uint16 when every id is < 65536)")
    out = p.add_argument_group("output")
    out.add_argument("--out-dir", required=True, metavar="DIR", help="output directory (created if need be)")
    out.add_argument("--name", required=True, help="shards are DIR/NAME_train_000000.bin, DIR/NAME_val_...")
    out.add_argument("--shard-tokens", type=positive(int, INT32_MAX), default=100_000_000, metavar="N",
                     help="start a new shard before a document that would take the shard past N tokens "
                          "(default: %(default)s)")
    split = out.add_mutually_exclusive_group()
    split.add_argument("--val-docs", type=int, metavar="N", help="exactly N documents go to val")
    split.add_argument("--val-fraction", type=fraction, default=0.02, metavar="F",
                       help="round(F x documents) go to val, at least 1 when F > 0; 0: no val split "
                            "(default: %(default)s)")
    out.add_argument("--seed", type=int, default=79,
                     help="seed of the train/val split (default: %(default)s)")
    run_ = p.add_argument_group("running")
    run_.add_argument("--workers", type=positive(int), default=os.cpu_count() or 1, metavar="N",
                      help="tokenizer processes for a tokenizer.json (default: the number of cores, "
                           "%(default)s); the byte tokenizer runs in the main process, where it is faster")
    run_.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    args = p.parse_args(argv)

    if args.val_docs is not None and args.val_docs < 0:
        p.error(f"argument --val-docs: {args.val_docs} is negative")
    if not args.hf_dataset and (args.hf_name or args.hf_split != "train"):
        p.error("--hf-name and --hf-split need --hf-dataset")
    if args.doc_separator is not None and args.format in ("jsonl", "parquet"):
        p.error(f"--doc-separator applies to text input, not --format {args.format}")
    if not args.name or os.sep in args.name:
        p.error(f"argument --name: {args.name!r} must be a plain file name prefix")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except PrepareError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, permissions, ...: the message names the file
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; no shard was written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
