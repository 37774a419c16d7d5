"""Options defined once per stage: a dataclass whose fields carry their range or choices.

Every entry point uses the same definition: the CLI flags (``add_arguments``), the proto mapping
(``from_proto`` / ``to_proto``, with explicit presence for scalars declared ``optional`` so a zero can
be asked for), the job API's submit-time check and the Kubernetes worker (``validate``, which names
the field). Field metadata: ``range=(low, high)`` (inclusive) or ``choices=(...)``, ``help``,
``aliases`` (more flag names, e.g. a short one kept from before) and ``flag=False`` for fields that
have no CLI flag of their own.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from faceswap.errors import InvalidArgument, echo


def option(
    default: Any,
    *,
    range: tuple[float, float] | None = None,
    choices: tuple[str, ...] = (),
    help: str = "",
    flag: bool = True,
    aliases: tuple[str, ...] = (),
) -> Any:  # noqa: A002
    return dataclasses.field(
        default=default,
        metadata={
            "range": range,
            "choices": tuple(choices),
            "help": help,
            "flag": flag,
            "aliases": tuple(aliases),
        },
    )


def specs(cls: type) -> list[dataclasses.Field]:
    return list(dataclasses.fields(cls))


def validate(obj: Any, prefix: str = "options.") -> Any:
    """Raises InvalidArgument naming the field (``options.mask_erode``) for a value out of its range
    or not among its choices; returns obj."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        choices = f.metadata.get("choices") or ()
        low_high = f.metadata.get("range")
        if choices and value not in choices:
            shown = ", ".join(str(c) for c in choices if c != "")
            raise InvalidArgument(
                f"unknown {f.name} {echo(value)}; choose one of {shown}"
                + (" (or '' for the default)" if "" in choices else ""),
                field=f"{prefix}{f.name}",
            )
        if low_high is not None:
            low, high = low_high
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise InvalidArgument(
                    f"{echo(value)} is out of range [{low}, {high}]", field=f"{prefix}{f.name}"
                )
    return obj


def from_proto(cls: type, msg: Any) -> Any:
    """The dataclass from a proto message: a field the message carries (explicit presence for
    ``optional`` scalars, else a non-empty / non-zero value) wins; the rest keep their defaults."""
    values = {}
    if msg is not None:
        present = {fd.name for fd, _ in msg.ListFields()}
        for f in dataclasses.fields(cls):
            if f.name in present:
                values[f.name] = getattr(msg, f.name)
    return cls(**values)


def to_proto(obj: Any, msg_cls: Any) -> Any:
    """Every field set explicitly, so the receiver sees the same values (zeros included)."""
    names = {fd.name for fd in msg_cls.DESCRIPTOR.fields}
    return msg_cls(**{k: v for k, v in dataclasses.asdict(obj).items() if k in names})


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    skip: tuple[str, ...] = (),
    defaults: bool = True,
    base: Any = None,
) -> None:
    """One flag per field (``--mask-erode``), typed, with its choices and its range in the help.
    defaults=False leaves every flag None unless given (for commands that pass on only what was set);
    ``base``: an instance whose values are the flags' defaults (a CLI whose default differs)."""
    base = cls() if base is None else base
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.metadata.get("flag", True):
            continue
        default = getattr(base, f.name)
        help_text = f.metadata.get("help") or ""
        low_high = f.metadata.get("range")
        if low_high is not None:
            help_text = f"{help_text} [{low_high[0]}..{low_high[1]}]".strip()
        help_text = f"{help_text} (default {default})".strip()
        kwargs: dict[str, Any] = {"default": default if defaults else None, "help": help_text}
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = type(default)
        if f.metadata.get("choices"):
            kwargs["choices"] = list(f.metadata["choices"])
        names = (flag_name(f.name), *f.metadata.get("aliases", ()))
        parser.add_argument(*names, dest=f.name, **kwargs)


def from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """The dataclass from parsed flags (a flag left None keeps the default), validated."""
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(cls)
        if getattr(args, f.name, None) is not None
    }
    values.update(overrides)
    return validate(cls(**values))
