"""benchmarks/mutation_check.py stays runnable: every mutation still applies to the source and names tests that exist
(fast), and each one is caught by its tests (slow: the script itself)."""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "mutation_check.py"


def _mutations():
    spec = importlib.util.spec_from_file_location("mutation_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MUTATIONS


MUTATIONS = _mutations()


@pytest.mark.parametrize("index", range(1, len(MUTATIONS) + 1))
def test_each_mutation_applies_once_and_names_tests_that_exist(index):
    name, rel, old, new, tests = MUTATIONS[index - 1]
    count = (ROOT / rel).read_text().count(old)
    assert count == 1, f"mutation {index} ({name}): its original text occurs {count} times in {rel}; update the script"
    assert new != old
    assert tests, f"mutation {index} ({name}) names no test that catches it"
    for target in tests:
        path, _, test = target.partition("::")
        assert (ROOT / path).is_file(), f"mutation {index} ({name}): no test file {path}"
        if test:
            assert re.search(rf"^def {re.escape(test)}\(", (ROOT / path).read_text(), re.M), \
                f"mutation {index} ({name}): no test {test} in {path}"


def test_mutation_names_are_distinct():
    names = [m[0] for m in MUTATIONS]
    assert len(set(names)) == len(names)


@pytest.mark.slow
def test_every_mutation_is_caught_by_its_tests():
    """The whole check, each mutation against its own tests (about 5 minutes on 2 busy cores)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, env=env, timeout=1500)
    assert res.returncode == 0, res.stdout + res.stderr
    caught = re.findall(r"^(\d+)\. .*: CAUGHT by ", res.stdout, re.M)
    assert sorted(map(int, caught)) == list(range(1, len(MUTATIONS) + 1)), res.stdout
    assert f"{len(MUTATIONS)} of {len(MUTATIONS)} mutations caught" in res.stdout
