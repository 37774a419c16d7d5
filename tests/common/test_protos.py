"""The contracts: stubs match protos/ and `buf lint` (STANDARD rules) passes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / ".tools" / "node_modules" / ".bin" / "buf"


def test_generated_stubs_are_fresh() -> None:
    done = subprocess.run([sys.executable, "tools/gen_protos.py", "--check"], cwd=ROOT, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()


def test_buf_lint_standard() -> None:
    if not BUF.exists():
        if not shutil.which("npm"):
            pytest.skip("npm is not installed: cannot fetch @bufbuild/buf")
        install = subprocess.run(
            ["npm", "install", "--prefix", ".tools", "--no-save", "--no-audit", "--no-fund", "@bufbuild/buf"],
            cwd=ROOT,
            capture_output=True,
            timeout=300,
        )
        if install.returncode != 0 or not BUF.exists():
            pytest.skip(f"could not install @bufbuild/buf: {install.stderr.decode()[-300:]}")
    done = subprocess.run([str(BUF), "lint", "protos"], cwd=ROOT, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
