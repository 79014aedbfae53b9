#!/usr/bin/env python3
"""Write the Softpick paper's benchmarks as task files for `softpick eval --tasks` (docs/evaluation.md).

    python3 scripts/export_eval_tasks.py --tokenizer byte --out-dir data/eval
    python3 scripts/export_eval_tasks.py --tokenizer path/to/tokenizer.json --out-dir data/eval-llama \\
        --tasks arc_easy,arc_challenge,piqa,sciq,lambada_openai,wikitext --passkey-lengths 1024,2048,4096

Downloads the datasets lm-eval-harness evaluates (ARC-Easy, ARC-Challenge, PIQA, SciQ, LAMBADA (OpenAI),
WikiText-2), builds each example's prompt exactly as lm-eval-harness's task configs do, and tokenizes it
with the model's tokenizer, so any vocabulary works: the C++ side only sees token ids. One file per task,
DIR/TASK.jsonl: a header line, then one example per line.

  multiple choice   context = "Question: ...\\nAnswer:", continuation = " " + choice, split as lm-eval's
                    _encode_pair does (trailing context whitespace moves to the continuation; the
                    continuation is tokens(context + continuation) minus tokens(context)); choice_chars =
                    len(choice), lm-eval's acc_norm denominator
  lambada_openai    context = all but the last word, one continuation " " + last word (greedy accuracy)
  wikitext          the document after lm-eval's WikiText detokenisation, with the word and byte counts of
                    the original page (word/byte perplexity, bits per byte)
  passkey           with --passkey-lengths: the prompts `softpick eval --passkey-lengths` builds natively
                    for the byte vocabulary, for any tokenizer (same text, same seeded keys)

Contexts and prompts start with BOS (--no-bos drops it), since every training document starts with BOS;
lm-eval's Hugging Face backend adds none by default, which --no-bos reproduces.

Needs network access to the Hugging Face Hub (or its local cache) and the packages `datasets` (and
`tokenizers` for a tokenizer.json); both are imported only when used. Exit code 2 with one message on any
problem the user can fix.
"""
import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from typing import Callable

PROG = "export_eval_tasks.py"

# The byte tokenizer (must match src/data/tokenizer.h): 0 <unk>, 1 <s>, 2 </s>, then byte b -> id b + 3.
BYTE_BOS_ID, BYTE_OFFSET, BYTE_VOCAB_SIZE = 1, 3, 259


class ExportError(Exception):
    """An error the user can act on: printed as one line, exit code 2."""


# ---------------------------------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------------------------------

class Encoder:
    """text -> token ids without special tokens, for the byte vocabulary or a tokenizer.json."""

    def __init__(self, spec, bos_id=None, vocab_size=None):
        self.spec = spec
        self.hf = None
        if spec == "byte":
            if bos_id not in (None, BYTE_BOS_ID):
                raise ExportError(f"the byte tokenizer's BOS id is fixed at {BYTE_BOS_ID}; drop --bos-id")
            self.bos_id, self.vocab_size = BYTE_BOS_ID, BYTE_VOCAB_SIZE
        else:
            path = os.path.join(spec, "tokenizer.json") if os.path.isdir(spec) else spec
            if not os.path.isfile(path):
                raise ExportError(f"tokenizer file {path} not found (give 'byte' or a tokenizer.json)")
            try:
                from tokenizers import Tokenizer
            except ImportError:
                raise ExportError("a tokenizer.json needs the Python package 'tokenizers': "
                                  "pip install tokenizers") from None
            try:
                self.hf = Tokenizer.from_file(path)
            except Exception as e:
                raise ExportError(f"cannot load tokenizer {path}: {e}") from None
            self.hf.no_truncation()
            self.hf.no_padding()
            found = self.hf.token_to_id("<s>")
            self.bos_id = bos_id if bos_id is not None else (1 if found is None else found)
            # ids need not be contiguous: the model's vocabulary is at least the largest id + 1
            self.vocab_size = max(self.hf.get_vocab(with_added_tokens=True).values()) + 1
        if vocab_size is not None:
            if vocab_size < self.vocab_size:
                raise ExportError(f"--vocab-size {vocab_size} is smaller than the tokenizer's {self.vocab_size} ids")
            self.vocab_size = vocab_size

    def encode(self, text):
        if self.hf is None:
            return [b + BYTE_OFFSET for b in text.encode("utf-8")]
        return self.hf.encode(text, add_special_tokens=False).ids


def encode_pair(enc, context, continuation):
    """(context ids, continuation ids) as lm-eval-harness's _encode_pair splits a loglikelihood request."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = enc.encode(context + continuation)
    ctx = enc.encode(context)
    return ctx, whole[len(ctx):]


# ---------------------------------------------------------------------------------------------------
# Tasks: lm-eval-harness's prompts (lm_eval/tasks/{arc,piqa,sciq,lambada,wikitext})
# ---------------------------------------------------------------------------------------------------

@dataclass
class Choice:
    """A loglikelihood request group: one context, continuations " " + choice."""
    context: str
    choices: list
    gold: int


def arc(row):
    return Choice(f"Question: {row['question']}\nAnswer:", list(row["choices"]["text"]),
                  list(row["choices"]["label"]).index(row["answerKey"]))


def piqa(row):
    return Choice(f"Question: {row['goal']}\nAnswer:", [row["sol1"], row["sol2"]], int(row["label"]))


def sciq(row):
    return Choice(f"{row['support'].lstrip()}\nQuestion: {row['question']}\nAnswer:",
                  [row["distractor1"], row["distractor2"], row["distractor3"], row["correct_answer"]], 3)


def lambada(row):
    """Context: every word but the last; the target " " + last word (split on single spaces, as lm-eval)."""
    words = row["text"].split(" ")
    return Choice(" ".join(words[:-1]), [words[-1]], 0)


def wikitext_detokenize(text):
    """Undo WikiText's tokenisation artefacts, the rules of lm-eval-harness's wikitext task in its order."""
    s = text.replace("s '", "s'")
    s = re.sub(r"/' [0-9]/", r"/'[0-9]/", s)
    for a, b in ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."), (" : ", ": "), (" ; ", "; "), (" . ", ". "),
                 (" ! ", "! "), (" ? ", "? "), (" , ", ", ")):
        s = s.replace(a, b)
    for open_, close in (("(", ")"), ("[", "]"), ("{", "}")):
        o, c = re.escape(open_), re.escape(close)
        s = re.sub(rf"{o}\s*([^{c}]*?)\s*{c}", rf"{open_}\1{close}", s)
    s = re.sub(r"\"\s*([^\"]*?)\s*\"", r'"\1"', s)
    s = re.sub(r"'\s*([^']*?)\s*'", r"'\1'", s)
    for a, b in (("= = = =", "===="), ("= = =", "==="), ("= =", "=="), (" \u00b0 ", "\u00b0"), (" \n", "\n"),
                 ("\n ", "\n"), (" N ", " 1 "), (" 's", "'s")):
        s = s.replace(a, b)
    return s


@dataclass
class TaskSpec:
    name: str
    dataset: str
    config: str | None
    split: str
    build: Callable  # row -> Choice, or row -> page text for perplexity tasks
    kind: str        # "choice" | "perplexity"


TASKS = {
    "arc_easy": TaskSpec("arc_easy", "allenai/ai2_arc", "ARC-Easy", "test", arc, "choice"),
    "arc_challenge": TaskSpec("arc_challenge", "allenai/ai2_arc", "ARC-Challenge", "test", arc, "choice"),
    "piqa": TaskSpec("piqa", "baber/piqa", None, "validation", piqa, "choice"),
    "sciq": TaskSpec("sciq", "allenai/sciq", None, "test", sciq, "choice"),
    "lambada_openai": TaskSpec("lambada_openai", "EleutherAI/lambada_openai", "default", "test", lambada, "choice"),
    "wikitext": TaskSpec("wikitext", "EleutherAI/wikitext_document_level", "wikitext-2-raw-v1", "test",
                         lambda row: row["page"], "perplexity"),
}


def example_line(spec, row, enc, bos, index):
    """The JSON object of one example."""
    if spec.kind == "perplexity":
        page = spec.build(row)
        # lm-eval counts words and bytes on the page before detokenisation
        return {"document": enc.encode(wikitext_detokenize(page)), "words": len(re.split(r"\s+", page)),
                "bytes": len(page.encode("utf-8")), "doc": index}
    req = spec.build(row)
    ctx, conts = None, []
    for choice in req.choices:
        c, cont = encode_pair(enc, req.context, " " + choice)
        ctx = c  # the same for every choice: it depends on the context alone
        conts.append(cont)
    return {"context": bos + ctx, "choices": conts, "choice_chars": [len(c) for c in req.choices],
            "gold": req.gold, "doc": index}


# ---------------------------------------------------------------------------------------------------
# Passkey retrieval: the prompts of src/eval/passkey.cpp
# ---------------------------------------------------------------------------------------------------

PASSKEY_INTRO = ("There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
                 "I will quiz you about the important information there.")
PASSKEY_FILLER = (" The grass is green.", " The sky is blue.", " The sun is yellow.", " Here we go.",
                  " There and back again.")
PASSKEY_QUESTION = " What is the pass key? The pass key is"
MASK64 = (1 << 64) - 1


def splitmix64(x):
    """src/core/rng.h, so a seed gives the same keys as the native prompts."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def mix_seed(a, b, c=0):
    return splitmix64(splitmix64(splitmix64(a) ^ b) ^ c)


def rng_below(state, n):
    """Rng(state).below(n) of src/core/rng.h: the first draw, with its rejection of the short last block."""
    limit = MASK64 - MASK64 % n
    while True:
        x = splitmix64(state)
        state = (state + 1) & MASK64
        if x < limit:
            return x % n


def passkey_prompt(key, sentences, before):
    needle = f" The pass key is {key}. Remember it. {key} is the pass key."
    parts = [PASSKEY_INTRO]
    for i in range(sentences):
        if i == before:
            parts.append(needle)
        parts.append(PASSKEY_FILLER[i % len(PASSKEY_FILLER)])
    if before == sentences:
        parts.append(needle)
    return "".join(parts) + PASSKEY_QUESTION


def passkey_lines(enc, bos, lengths, trials, seed):
    """Generation examples: BOS + prompt + answer fill each length L to within one filler sentence."""
    lines = []
    for L in lengths:
        for i in range(trials):
            key = str(10000 + rng_below(mix_seed(seed, L, i), 90000))
            answer_tokens = len(enc.encode(" " + key))  # the answer as the tokenizer writes it
            depth = i / (trials - 1) if trials > 1 else 0.5

            def tokens(n):  # BOS + prompt with n filler sentences, the key at its depth
                return bos + enc.encode(passkey_prompt(key, n, int(depth * n + 0.5)))  # llround

            def fits(n):
                return len(tokens(n)) + answer_tokens <= L

            if not fits(1):
                raise ExportError(f"--passkey-lengths: {L} tokens is too short; this tokenizer needs at least "
                                  f"{len(tokens(1)) + answer_tokens}")
            lo, hi = 1, 2  # the most sentences that fit: bracket, then bisect (lengths grow with n)
            while fits(hi):
                lo, hi = hi, hi * 2
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if fits(mid) else (lo, mid)
            prompt = tokens(lo)
            lines.append({"prompt": prompt, "answer": key, "max_tokens": answer_tokens, "group": str(L),
                          "meta": {"depth": depth, "length": L}})
    return lines


# ---------------------------------------------------------------------------------------------------
# Datasets and files
# ---------------------------------------------------------------------------------------------------

def load_rows(spec, split):
    try:
        import datasets
    except ImportError:
        raise ExportError("downloading the benchmarks needs the Python package 'datasets': "
                          "pip install datasets") from None
    try:
        return datasets.load_dataset(spec.dataset, spec.config, split=split)
    except Exception as e:
        raise ExportError(f"{spec.name}: cannot load {spec.dataset} ({spec.config or 'default'}, {split}): "
                          f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. This needs network "
                          f"access to the Hugging Face Hub, or the dataset in the local cache "
                          f"(HF_DATASETS_OFFLINE=1)") from None


def write_jsonl(path, header, lines):
    """Written to PATH.tmp, then renamed: a failed run never leaves half a file."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(header) + "\n")
        for line in lines:
            f.write(json.dumps(line, separators=(",", ":")) + "\n")
    os.replace(tmp, path)


def header(name, enc, source, n):
    return {"task": name, "format": 1, "vocab_size": enc.vocab_size, "tokenizer": enc.spec,
            "bos_token_id": enc.bos_id, "source": source, "examples": n}


def export_task(spec, rows, enc, bos, out_dir, split, limit=None):
    lines = []
    for i, row in enumerate(rows):
        if limit is not None and i >= limit:
            break
        lines.append(example_line(spec, row, enc, bos, i))
    path = os.path.join(out_dir, spec.name + ".jsonl")
    source = f"{spec.dataset} {spec.config or ''} {split}".replace("  ", " ")
    write_jsonl(path, header(spec.name, enc, source, len(lines)), lines)
    return path, len(lines)


def int_list(text):
    try:
        values = [int(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': expected integers separated by commas") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"'{text}': expected positive integers")
    return values


def parse_args(argv):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokenizer", required=True, metavar="byte|PATH", help="'byte' or the model's tokenizer.json")
    p.add_argument("--out-dir", required=True, metavar="DIR", help="output directory (created if need be)")
    p.add_argument("--tasks", default=",".join(TASKS), metavar="NAMES",
                   help=f"comma-separated, from {', '.join(TASKS)}; 'none' for passkey only (default: all)")
    p.add_argument("--split", metavar="SPLIT", help="dataset split (default: the one lm-eval-harness scores)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N examples of each task")
    p.add_argument("--no-bos", dest="bos", action="store_false", help="no BOS before contexts and prompts")
    p.add_argument("--bos-id", type=int, metavar="N", help="BOS id of a tokenizer.json (default: <s>, else 1)")
    p.add_argument("--vocab-size", type=int, metavar="N",
                   help="the model's vocabulary size, when it pads the tokenizer's (checked by softpick eval)")
    p.add_argument("--passkey-lengths", type=int_list, metavar="L,...", help="also write passkey.jsonl")
    p.add_argument("--passkey-trials", type=int, default=5, metavar="N", help="prompts per length (default 5)")
    p.add_argument("--passkey-seed", type=int, default=0, metavar="S", help="seed of the keys (default 0)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    names = [] if args.tasks == "none" else [t for t in args.tasks.split(",") if t]
    for n in names:
        if n not in TASKS:
            raise ExportError(f"--tasks: unknown task '{n}'; choose from {', '.join(TASKS)}")
    enc = Encoder(args.tokenizer, args.bos_id, args.vocab_size)
    bos = [enc.bos_id] if args.bos else []
    os.makedirs(args.out_dir, exist_ok=True)
    for n in names:
        spec = TASKS[n]
        split = args.split or spec.split
        path, count = export_task(spec, load_rows(spec, split), enc, bos, args.out_dir, split, args.limit)
        print(f"{path}: {count} examples", flush=True)
    if args.passkey_lengths:
        if args.passkey_trials < 1:
            raise ExportError("--passkey-trials: must be at least 1")
        lines = passkey_lines(enc, bos, args.passkey_lengths, args.passkey_trials, args.passkey_seed)
        path = os.path.join(args.out_dir, "passkey.jsonl")
        write_jsonl(path, header("passkey", enc, f"native passkey prompts, seed {args.passkey_seed}", len(lines)),
                    lines)
        print(f"{path}: {len(lines)} examples", flush=True)


if __name__ == "__main__":
    try:
        main()
    except ExportError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        sys.exit(2)
