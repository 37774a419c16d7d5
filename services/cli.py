"""The ``faceswap`` command. Each service contributes its subcommands from its own cli module."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from services.common.cli import dispatch

# Modules exposing ``register(subparsers)``; a module missing here is simply skipped.
COMMAND_MODULES = (
    "services.media.cli",
    "services.detector.cli",
    "services.trainer.cli",
    "services.converter.cli",
    "services.orchestrator.cli",
    "services.evaluate.cli",
    "services.live.cli",
    "services.common.cli",
)
# Modules with more configuration variables (name -> (default, meaning)) for `faceswap config`.
ENV_DOC_MODULES = (
    ("services.orchestrator.settings", "ORCHESTRATOR_ENV_DOCS"),
    ("services.orchestrator.k8s_jobs", "K8S_ENV_DOCS"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faceswap", description="Face swap platform")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue
            raise
        if name == "services.common.cli":
            module.register(sub, ENV_DOC_MODULES)
        else:
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    return dispatch(args)


if __name__ == "__main__":
    sys.exit(main())
