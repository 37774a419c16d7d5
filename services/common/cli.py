"""Shared CLI pieces: ``dispatch`` (a command's domain error is one line, never a traceback) and
`faceswap config`, which prints every configuration variable, its current value and its default."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from faceswap.config import ENV_DOCS
from faceswap.errors import ServiceError

# Modules that document more variables (name -> (default, meaning)) next to the code that reads them.
# The shared core knows no service: the `faceswap` entry point (services/cli.py) passes the services'
# tables in through register(); the library's own tables are listed here.
LIBRARY_DOCS = (("faceswap.limits", "LIMIT_ENV_DOCS"),)


def all_env_docs(extra: tuple[tuple[str, str], ...] = ()) -> dict[str, tuple[str, str]]:
    docs = dict(ENV_DOCS)
    for module_name, attr in LIBRARY_DOCS + tuple(extra):
        try:
            docs.update(getattr(importlib.import_module(module_name), attr))
        except (ImportError, AttributeError):
            continue
    return docs


def register(sub: argparse._SubParsersAction, extra_docs: tuple[tuple[str, str], ...] = ()) -> None:
    p = sub.add_parser("config", help="show configuration variables")
    p.set_defaults(func=run, env_doc_modules=tuple(extra_docs))


def run(args: argparse.Namespace) -> int:
    for name, (default, doc) in all_env_docs(getattr(args, "env_doc_modules", ())).items():
        value = os.environ.get(name, default)
        print(f"{name}={value!s:<24} # {doc} (default {default!r})")
    return 0


def dispatch(args: argparse.Namespace) -> int:
    """Runs a parsed command: domain errors become one line and exit 2, never a traceback."""
    try:
        return int(args.func(args) or 0)
    except ServiceError as exc:
        print(f"faceswap: error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("faceswap: interrupted", file=sys.stderr)
        return 130
