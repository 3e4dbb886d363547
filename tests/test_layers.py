"""Import layering: the import-linter contracts in pyproject.toml hold, and a new upward import breaks them.

The second half copies ``src/glassfeed`` to a temporary folder, adds one forbidden import to the copy, and runs
the same contracts on it (``PYTHONPATH`` pointing at the copy): each must be reported, so the contracts are not
vacuous.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "pyproject.toml"
#: Runs import-linter on CONFIG and exits with its status (0: every contract kept); prints which package it read.
_RUN = (
    "import importlib.util, sys\n"
    "from importlinter.cli import lint_imports\n"
    "print('glassfeed from', importlib.util.find_spec('glassfeed').origin)\n"
    "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))\n"
)


def lint_imports(src: Path) -> tuple[int, str]:
    """Exit status and output of import-linter with ``src`` (a folder holding ``glassfeed/``) first on the path."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run(
        [sys.executable, "-c", _RUN, str(CONFIG)], env=env, capture_output=True, text=True, timeout=120
    )
    out = proc.stdout + proc.stderr
    assert f"glassfeed from {src / 'glassfeed' / '__init__.py'}" in out, out  # checked the tree we meant
    return proc.returncode, out


def test_the_package_keeps_every_import_contract():
    code, out = lint_imports(ROOT / "src")
    assert code == 0, out
    kept = re.search(r"Contracts: (\d+) kept, 0 broken\.", out)
    assert kept and int(kept.group(1)) >= 4 and "BROKEN" not in out, out


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package's source (without caches)."""
    dst = tmp_path_factory.mktemp("pristine") / "glassfeed"
    shutil.copytree(ROOT / "src" / "glassfeed", dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dst.parent


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        # a lower layer importing a higher one
        ("store/__init__.py", "import glassfeed.feed", "glassfeed.store is not allowed to import glassfeed.feed"),
        (
            "domain/kinds.py",
            "from glassfeed.settings import Settings",
            "glassfeed.domain is not allowed to import glassfeed.settings",
        ),
        # independent siblings of one layer
        (
            "sim/text.py",
            "import glassfeed.evaluate.metrics",
            "glassfeed.sim is not allowed to import glassfeed.evaluate",
        ),
        # the model library stays free of the rest of the package and of I/O
        (
            "retrieval/base.py",
            "import glassfeed.domain",
            "glassfeed.retrieval is not allowed to import glassfeed.domain",
        ),
        ("retrieval/ease.py", "import pandas", "glassfeed.retrieval is not allowed to import pandas"),
        # SQL outside the store
        ("feed/policy.py", "import sqlite3", "glassfeed.feed.policy -> sqlite3"),
    ],
)
def test_a_new_forbidden_import_breaks_a_contract(
    pristine: Path, tmp_path: Path, module: str, line: str, expected: str
):
    src = tmp_path / "src"
    shutil.copytree(pristine, src)
    target = src / "glassfeed" / module
    target.write_text(target.read_text() + f"\n{line}  # injected by the test\n")
    code, out = lint_imports(src)
    assert code != 0, out
    assert expected in out, out
    assert "injected" not in (ROOT / "src" / "glassfeed" / module).read_text()  # the real tree is untouched


def test_a_cycle_between_sibling_modules_is_reported(pristine: Path, tmp_path: Path):
    src = tmp_path / "src"
    shutil.copytree(pristine, src)
    # retrieval.base is imported by retrieval.ease; the reverse import closes a cycle inside one package
    target = src / "glassfeed" / "retrieval" / "base.py"
    target.write_text(target.read_text() + "\nimport glassfeed.retrieval.ease  # injected by the test\n")
    code, out = lint_imports(src)
    assert code != 0, out
    assert "No cycles are allowed in glassfeed.retrieval" in out, out
