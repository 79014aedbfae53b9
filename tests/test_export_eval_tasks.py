#!/usr/bin/env python3
"""Offline tests of scripts/export_eval_tasks.py: lm-eval-harness's prompts and request splitting on
in-memory rows shaped like the Hugging Face datasets, the WikiText detokeniser, the JSONL files, passkey
prompts equal to the native ones of `softpick eval`, and a clear error when the Hub cannot be reached.

    python3 tests/test_export_eval_tasks.py

The tokenizer.json test needs the `tokenizers` package and fails (not skips) without it. The last line is
"N passed, M failed".
"""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import testlib

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "export_eval_tasks.py"
spec = importlib.util.spec_from_file_location("export_eval_tasks", SCRIPT)
ex = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ex)

BOS, OFFSET = 1, 3


def byte_ids(text):
    return [b + OFFSET for b in text.encode("utf-8")]


ARC_ROW = {"question": "Which gas do plants absorb?", "answerKey": "B",
           "choices": {"text": ["oxygen", "carbon dioxide", "helium"], "label": ["A", "B", "C"]}}
PIQA_ROW = {"goal": "Open a jar.", "sol1": "Twist the lid.", "sol2": "Paint the lid.", "label": 0}
SCIQ_ROW = {"support": "  Plants make sugar.", "question": "What do plants make?", "distractor1": "salt",
            "distractor2": "iron", "distractor3": "sand", "correct_answer": "sugar"}
LAMBADA_ROW = {"text": "He opened the door and saw his old friend Tom"}


class PromptTest(unittest.TestCase):
    def test_prompts_are_lm_eval_harness_s(self):
        r = ex.arc(ARC_ROW)
        self.assertEqual((r.context, r.choices, r.gold),
                         ("Question: Which gas do plants absorb?\nAnswer:", ["oxygen", "carbon dioxide", "helium"], 1))
        r = ex.piqa(PIQA_ROW)
        self.assertEqual((r.context, r.choices, r.gold),
                         ("Question: Open a jar.\nAnswer:", ["Twist the lid.", "Paint the lid."], 0))
        r = ex.sciq(SCIQ_ROW)
        self.assertEqual(r.context, "Plants make sugar.\nQuestion: What do plants make?\nAnswer:")
        self.assertEqual((r.choices[3], r.gold), ("sugar", 3))
        r = ex.lambada(LAMBADA_ROW)
        self.assertEqual((r.context, r.choices, r.gold), ("He opened the door and saw his old friend", ["Tom"], 0))

    def test_encode_pair_moves_trailing_whitespace_to_the_continuation(self):
        enc = ex.Encoder("byte")
        self.assertEqual(ex.encode_pair(enc, "Answer: ", "Paris"), (byte_ids("Answer:"), byte_ids(" Paris")))
        self.assertEqual(ex.encode_pair(enc, "Answer:", " Paris"), (byte_ids("Answer:"), byte_ids(" Paris")))

    def test_choice_lines(self):
        enc = ex.Encoder("byte")
        line = ex.example_line(ex.TASKS["arc_easy"], ARC_ROW, enc, [BOS], 7)
        self.assertEqual(line["context"], [BOS] + byte_ids("Question: Which gas do plants absorb?\nAnswer:"))
        self.assertEqual(line["choices"][1], byte_ids(" carbon dioxide"))
        self.assertEqual(line["choice_chars"], [6, 14, 6])  # len(choice), without the delimiter
        self.assertEqual((line["gold"], line["doc"]), (1, 7))
        line = ex.example_line(ex.TASKS["lambada_openai"], LAMBADA_ROW, enc, [], 0)
        self.assertEqual(line["context"], byte_ids("He opened the door and saw his old friend"))  # --no-bos
        self.assertEqual(line["choices"], [byte_ids(" Tom")])

    def test_wikitext_detokenisation_and_counts(self):
        page = " = = History = = \n The town @-@ hall , built in 1 @,@ 000 ( approx . ) , cost 2 @.@ 5 N . \n"
        self.assertEqual(ex.wikitext_detokenize(page),
                         " == History ==\nThe town-hall, built in 1,000 (approx.), cost 2.5 N.\n")
        line = ex.example_line(ex.TASKS["wikitext"], {"page": page}, ex.Encoder("byte"), [BOS], 0)
        self.assertEqual(line["document"], byte_ids(ex.wikitext_detokenize(page)))  # no BOS: the prefix token
        self.assertEqual(line["words"], len(page.split()) + 2)  # re.split counts the empty ends too
        self.assertEqual(line["bytes"], len(page.encode()))


class FileTest(unittest.TestCase):
    def test_task_file_has_a_header_and_one_example_per_line(self):
        with tempfile.TemporaryDirectory() as d:
            enc = ex.Encoder("byte")
            path, n = ex.export_task(ex.TASKS["piqa"], [PIQA_ROW, PIQA_ROW, PIQA_ROW], enc, [BOS], d, "validation",
                                     limit=2)
            self.assertEqual((Path(path).name, n), ("piqa.jsonl", 2))
            lines = [json.loads(x) for x in Path(path).read_text().splitlines()]
            self.assertEqual(lines[0]["task"], "piqa")
            self.assertEqual(lines[0]["vocab_size"], 259)
            self.assertEqual(lines[0]["source"], "baber/piqa validation")
            self.assertEqual(len(lines), 3)
            self.assertEqual(os.listdir(d), ["piqa.jsonl"])  # no .tmp left behind

    def test_passkey_prompts_equal_the_native_ones(self):
        # keys and prompt lengths of `softpick eval --passkey-lengths 300,1000 --passkey-trials 3
        # --passkey-seed 11` (src/eval/passkey.cpp) for the byte vocabulary
        lines = ex.passkey_lines(ex.Encoder("byte"), [BOS], [300, 1000], 3, 11)
        self.assertEqual([x["answer"] for x in lines], ["31794", "22166", "18106", "37353", "82876", "16967"])
        self.assertEqual([len(x["prompt"]) for x in lines], [281, 281, 281, 984, 984, 984])
        self.assertTrue(all(x["max_tokens"] == 6 for x in lines))
        text = bytes(t - OFFSET for t in lines[0]["prompt"][1:]).decode()
        self.assertTrue(text.startswith(ex.PASSKEY_INTRO + " The pass key is 31794. Remember it. 31794 is the"))
        self.assertTrue(text.endswith("What is the pass key? The pass key is"))
        self.assertEqual([x["group"] for x in lines], ["300"] * 3 + ["1000"] * 3)


class TokenizerJsonTest(unittest.TestCase):
    def test_continuation_is_whole_minus_context(self):
        try:
            tok = testlib.byte_level_bpe(["Question: what is it?\nAnswer: a cat. The pass key is 12345."] * 50, 300)
        except ImportError:
            self.fail("this test needs the 'tokenizers' package: pip install tokenizers")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "tokenizer.json")
            tok.save(path)
            enc = ex.Encoder(path)
            self.assertEqual((enc.bos_id, enc.vocab_size), (1, tok.get_vocab_size(with_added_tokens=True)))
            ctx, cont = ex.encode_pair(enc, "Question: what is it?\nAnswer:", " a cat.")
            self.assertEqual(ctx, tok.encode("Question: what is it?\nAnswer:", add_special_tokens=False).ids)
            whole = tok.encode("Question: what is it?\nAnswer: a cat.", add_special_tokens=False).ids
            self.assertEqual(ctx + cont, whole)
            for line in ex.passkey_lines(enc, [1], [400], 2, 0):
                self.assertLessEqual(len(line["prompt"]) + line["max_tokens"], 400)
            with self.assertRaises(ex.ExportError):
                ex.Encoder(path, vocab_size=10)


class CommandLineTest(unittest.TestCase):
    def run_script(self, *args, env=None):
        return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                              env={**os.environ, **(env or {})}, timeout=120)

    def test_offline_is_one_clear_error(self):
        with tempfile.TemporaryDirectory() as d:
            run = self.run_script("--tokenizer", "byte", "--out-dir", d, "--tasks", "arc_easy",
                                  env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
            self.assertEqual(run.returncode, 2, run.stderr)
            self.assertEqual(len(run.stderr.strip().splitlines()), 1, run.stderr)
            self.assertTrue("network access" in run.stderr or "pip install datasets" in run.stderr, run.stderr)
            self.assertEqual(os.listdir(d), [])

    def test_bad_arguments(self):
        with tempfile.TemporaryDirectory() as d:
            run = self.run_script("--tokenizer", "byte", "--out-dir", d, "--tasks", "mmlu")
            self.assertEqual(run.returncode, 2)
            self.assertIn("unknown task 'mmlu'", run.stderr)
            run = self.run_script("--tokenizer", os.path.join(d, "nope.json"), "--out-dir", d, "--tasks", "none")
            self.assertEqual(run.returncode, 2)
            self.assertIn("not found", run.stderr)
            run = self.run_script("--tokenizer", "byte", "--out-dir", d, "--tasks", "none", "--passkey-lengths", "100")
            self.assertEqual(run.returncode, 2)
            self.assertIn("too short", run.stderr)


def main():
    return testlib.run([PromptTest, FileTest, TokenizerJsonTest, CommandLineTest], sys.argv[1:])

if __name__ == "__main__":
    sys.exit(main())
