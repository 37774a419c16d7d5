"""`faceswap config`: prints every configuration variable, its current value and its default."""

from __future__ import annotations

import argparse
import importlib
import os

from services.common.config import ENV_DOCS

# Modules that document more variables (name -> (default, meaning)) next to the code that reads them.
EXTRA_DOCS = (
    ("services.common.limits", "LIMIT_ENV_DOCS"),
    ("services.orchestrator.settings", "ORCHESTRATOR_ENV_DOCS"),
    ("services.orchestrator.k8s_jobs", "K8S_ENV_DOCS"),
)


def all_env_docs() -> dict[str, tuple[str, str]]:
    docs = dict(ENV_DOCS)
    for module_name, attr in EXTRA_DOCS:
        try:
            docs.update(getattr(importlib.import_module(module_name), attr))
        except (ImportError, AttributeError):
            continue
    return docs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="show configuration variables")
    p.set_defaults(func=run)


def run(_args: argparse.Namespace) -> int:
    for name, (default, doc) in all_env_docs().items():
        value = os.environ.get(name, default)
        print(f"{name}={value!s:<24} # {doc} (default {default!r})")
    return 0
