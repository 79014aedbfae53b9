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


def softpick_binary(path):
    """The absolute path of the softpick binary given with --softpick, None without one; exits with 2 if the
    path is not an executable file (a missing build must fail the test, not skip it)."""
    if path is None:
        return None
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        print(f"error: --softpick {path} is not an executable file", file=sys.stderr)
        sys.exit(2)
    return os.path.abspath(path)


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
