"""`faceswap config`: prints the configuration variables and their current values."""

from __future__ import annotations

import argparse

from services.common.config import ENV_DOCS, env


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="show configuration variables")
    p.set_defaults(func=run)


def run(_args: argparse.Namespace) -> int:
    for name, (default, doc) in ENV_DOCS.items():
        print(f"{name}={env(name)!s:<24} # {doc} (default {default!r})")
    return 0
