"""Generates the Python gRPC stubs from protos/ into services/common/pb (``make proto``).

``--check`` generates into a temporary folder and fails if the checked-in stubs differ, so CI
catches a proto change whose stubs were not regenerated.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTOS = ROOT / "protos"
OUT = ROOT / "services" / "common" / "pb"
PACKAGE = "services.common.pb"


def generate(out: Path) -> None:
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # protoc writes absolute imports ("from faceswap.v1 import x"); make them package-relative.
    for path in out.rglob("*.py*"):
        text = path.read_text()
        fixed = re.sub(r"^from faceswap\.v1 import", f"from {PACKAGE}.faceswap.v1 import", text, flags=re.M)
        fixed = re.sub(r"^import faceswap\.v1\.", f"import {PACKAGE}.faceswap.v1.", fixed, flags=re.M)
        path.write_text(fixed)
    for folder in [out, *[p for p in out.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").touch()


def same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    if cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files:
        print(f"stale stubs in {b}: {cmp.left_only + cmp.right_only + cmp.diff_files}", file=sys.stderr)
        return False
    return all(same_tree(a / d, b / d) for d in cmp.common_dirs)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            if not same_tree(Path(tmp), OUT):
                print("run 'make proto' and commit the result", file=sys.stderr)
                return 1
        print("protobuf stubs are up to date")
        return 0
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    generate(OUT)
    print(f"generated stubs in {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
