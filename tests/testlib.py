"""What the Python tests share: the --softpick binary argument, and a runner whose last line is the closing
line that ctest logs and CI read ("N passed, M failed")."""
import os
import struct
import sys
import unittest


def write_shard(path, tokens):
    """A version-1 (uint16) token shard (docs/data.md), written here independently of the C++ code."""
    header = struct.pack("<256i", 20240520, 1, len(tokens), *([0] * 253))
    with open(path, "wb") as f:
        f.write(header + struct.pack(f"<{len(tokens)}H", *tokens))


def write_byte_corpus(directory, text, val_tokens=4000):
    """t_train.bin (BOS + the byte-vocabulary ids of `text`, byte + 3) and t_val.bin (its first val_tokens
    tokens) in `directory`; returns the --data.train_files and --data.val_files overrides."""
    tokens = [1] + [b + 3 for b in text.encode()]
    write_shard(os.path.join(directory, "t_train.bin"), tokens)
    write_shard(os.path.join(directory, "t_val.bin"), tokens[:val_tokens])
    return [f"--data.train_files={directory}/t_train.bin", f"--data.val_files={directory}/t_val.bin"]


def byte_level_bpe(texts, vocab_size):
    """A small GPT-2-style byte-level BPE tokenizer (the `tokenizers` package) trained on `texts`, with
    <unk>, <s>, </s> as ids 0, 1, 2."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


def softpick_binary(path):
    """The absolute path of the softpick binary given with --softpick, None without one; exits with 2 if the
    path is not an executable file (a missing build must fail the test, not skip it)."""
    if path is None:
        return None
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        print(f"error: --softpick {path} is not an executable file", file=sys.stderr)
        sys.exit(2)
    return os.path.abspath(path)


def run_softpick(binary, *args, ok=True):
    """Runs `softpick ARGS` and returns the CompletedProcess; with ok, a non-zero exit fails the test with the
    end of its stderr."""
    import subprocess
    p = subprocess.run([binary, *map(str, args)], capture_output=True, text=True, errors="replace")
    if ok and p.returncode != 0:
        raise AssertionError(f"softpick {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return p


def run(classes, args=()):
    """Runs the test classes (positional `args` filter test names as unittest's -k does) and returns the exit
    code: 1 if anything failed or nothing ran."""
    loader = unittest.TestLoader()
    names = [a for a in args if not a.startswith("-")]
    loader.testNamePatterns = [f"*{n}*" for n in names] or None
    suite = unittest.TestSuite(loader.loadTestsFromTestCase(c) for c in classes)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    print(f"{result.testsRun - failed - len(result.skipped)} passed, {failed} failed")
    return 1 if failed or result.testsRun == 0 else 0
