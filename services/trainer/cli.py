"""`faceswap train`: train on local face folders (progress bar, Ctrl-C saves), and `train export`."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from faceswap.errors import InvalidArgument, NotFound
from faceswap.model import checkpoint as ckpt_io
from faceswap.model.network import PRESETS
from faceswap.options.train import DEFAULT_SAVE_EVERY, DEFAULT_STEPS, TrainOptions
from faceswap.storage import LocalStore, ObjectInfo, ObjectStore
from services.trainer.loop import TrainProgress, train


class FolderStore(ObjectStore):
    """Several local folders as one store: key "faces_a/faces/x.png" -> folders["faces_a"]/faces/x.png.

    Lets the core (which addresses everything by key in one store) work on the user's folders
    wherever they are, without copying them.
    """

    def __init__(self, folders: dict[str, Path]) -> None:
        self.bucket = ""
        self.stores = {name: LocalStore(path, "") for name, path in folders.items()}

    def _split(self, key: str) -> tuple[LocalStore, str]:
        head, _, rest = key.partition("/")
        if head not in self.stores:
            raise NotFound(f"object {key!r} not found")
        return self.stores[head], rest

    def put_stream(self, key: str, stream: BinaryIO, size: int = -1) -> ObjectInfo:
        store, rest = self._split(key)
        info = store.put_stream(rest, stream, size)
        return ObjectInfo(key, info.size, info.sha256)

    def open(self, key: str) -> BinaryIO:
        store, rest = self._split(key)
        return store.open(rest)

    def stat(self, key: str) -> ObjectInfo:
        store, rest = self._split(key)
        info = store.stat(rest)
        return ObjectInfo(key, info.size, info.sha256)

    def list(self, prefix: str = "") -> Iterator[str]:
        head, _, rest = prefix.partition("/")
        if head not in self.stores:
            return iter(())
        return iter([f"{head}/{k}" for k in self.stores[head].list(rest)])

    def delete(self, key: str) -> None:
        store, rest = self._split(key)
        store.delete(rest)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the face-swap model on two face sets (progress bar; Ctrl-C saves and exits)",
        description="Train (or resume) a model on face sets made by `faceswap extract`. "
        "Subcommands: `export` (weights-only fp16 copy), `info` (checkpoint metadata).",
    )
    p.add_argument(
        "-A", "--faces-a", type=Path, help="face set of person A (folder with faces/ + alignments.json)"
    )
    p.add_argument("-B", "--faces-b", type=Path, help="face set of person B")
    p.add_argument("-m", "--model-dir", type=Path, help="model folder (checkpoint.pt, preview.png)")
    p.add_argument(
        "--preset",
        default="",
        choices=["", *PRESETS],
        help="model + recipe (default: the checkpoint's or warm start's, else lite)",
    )
    p.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, help=f"train until this step count ({DEFAULT_STEPS})"
    )
    p.add_argument("--batch-size", type=int, default=0, help="per identity (0 = preset's)")
    p.add_argument("--lr", type=float, default=0.0, help="learning rate (0 = preset's)")
    p.add_argument("--loss", default="", choices=["", "l1", "l1_ssim"], help="loss (preset's)")
    p.add_argument(
        "--save-every",
        type=int,
        default=DEFAULT_SAVE_EVERY,
        help=f"checkpoint + preview every N steps ({DEFAULT_SAVE_EVERY})",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--max-seconds", type=float, default=0.0, help="wall-clock budget; saves and stops (0 = none)"
    )
    p.add_argument(
        "--warm-start", default="", help="checkpoint file, model folder or builtin:NAME to start from"
    )
    p.add_argument(
        "--allow-foreign-warm-start", action="store_true", help="use a warm start trained on other faces"
    )
    p.add_argument(
        "--from-scratch", action="store_true", help="ignore --warm-start, start from random weights"
    )
    p.add_argument("--size", type=int, default=0, help="model size in px (0 = the faces' size)")
    p.add_argument("--device", default="", help="cpu, cuda, cuda:1 (default: cuda when present)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = FACESWAP_THREADS or all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line per save)")
    p.set_defaults(func=cmd_train)
    tsub = p.add_subparsers(dest="train_command", metavar="ACTION")

    e = tsub.add_parser("export", help="write a weights-only copy of a checkpoint (fp16: a small warm start)")
    e.add_argument("checkpoint", type=Path, help="model folder or checkpoint .pt file")
    e.add_argument("-o", "--output", type=Path, required=True, help="output .pt file")
    e.add_argument(
        "--fp16", action=argparse.BooleanOptionalAction, default=True, help="half precision (default)"
    )
    e.set_defaults(func=cmd_export)

    i = tsub.add_parser("info", help="print a checkpoint's step, preset, size and face-set fingerprints")
    i.add_argument("checkpoint", type=Path, help="model folder or checkpoint .pt file")
    i.set_defaults(func=cmd_info)


def _read_local_checkpoint(path: Path) -> ckpt_io.Checkpoint:
    if path.is_dir():
        path = path / ckpt_io.CHECKPOINT
    if not path.is_file():
        raise NotFound(f"no checkpoint at {str(path)!r}")
    return ckpt_io.read_checkpoint_file(path)


def _folder(path: Path | None, flag: str) -> Path:
    if path is None:
        raise InvalidArgument(f"{flag} is required", field=flag)
    return path.expanduser().resolve()


def cmd_train(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        return _train(args, stack)


def _train(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    faces_a = _folder(args.faces_a, "-A/--faces-a")
    faces_b = _folder(args.faces_b, "-B/--faces-b")
    model_dir = _folder(args.model_dir, "-m/--model-dir")
    for path, flag in ((faces_a, "-A"), (faces_b, "-B")):
        if not path.is_dir():
            raise NotFound(f"face set folder {str(path)!r} ({flag}) not found")
    model_dir.mkdir(parents=True, exist_ok=True)
    # Prefix names double as what messages call each folder.
    folders = {"faces_a": faces_a, "faces_b": faces_b, "model_dir": model_dir}
    warm = args.warm_start
    if warm and not warm.startswith(ckpt_io.BUILTIN_SCHEME):
        wpath = Path(warm).expanduser().resolve()
        if wpath.is_dir():
            wpath = wpath / ckpt_io.CHECKPOINT
        if not wpath.is_file():
            raise NotFound(f"warm start {warm!r} not found")
        # A private copy: wrapping the file's own folder as a store would write metadata there.
        tmp = tempfile.TemporaryDirectory(prefix="faceswap-warm-")
        stack.callback(tmp.cleanup)
        shutil.copyfile(wpath, Path(tmp.name) / "warm_start.pt")
        folders["warm_start"] = Path(tmp.name)
        warm = "warm_start/warm_start.pt"
    store = FolderStore(folders)
    options = TrainOptions(
        preset=args.preset,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        loss=args.loss,
        save_every=args.save_every,
        seed=args.seed,
        max_seconds=args.max_seconds,
        warm_start=warm,
        allow_foreign_warm_start=args.allow_foreign_warm_start,
        from_scratch=args.from_scratch,
        size=args.size,
        device=args.device,
        threads=args.threads,
        report_every=0.5,
    )
    stop = threading.Event()
    bar = None
    announced = False

    def on_progress(p: TrainProgress) -> None:
        nonlocal bar, announced
        if not announced:
            announced = True
            message = p.message.replace(warm, args.warm_start) if warm else p.message
            print(f"faceswap train: {message}", file=sys.stderr)
        if args.no_progress:
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=p.total_steps, initial=p.step, unit="step", dynamic_ncols=True, file=sys.stderr)
        bar.update(p.step - bar.n)
        bar.set_postfix(loss_a=f"{p.loss_a:.4f}", loss_b=f"{p.loss_b:.4f}", sps=f"{p.samples_per_second:.0f}")

    def on_sigint(_signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        print("\nfaceswap train: saving a checkpoint and stopping (Ctrl-C again to abort)", file=sys.stderr)
        stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        final = train(store, "faces_a", "faces_b", "model_dir", options, on_progress, stop)
    finally:
        signal.signal(signal.SIGINT, previous)
        if bar is not None:
            bar.close()
    print(
        f"{final.state} at step {final.step}/{final.total_steps}: loss A {final.loss_a:.4f}, "
        f"loss B {final.loss_b:.4f}; checkpoint {model_dir / ckpt_io.CHECKPOINT}, "
        f"preview {model_dir / ckpt_io.PREVIEW}"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    ckpt = _read_local_checkpoint(args.checkpoint)
    data = ckpt_io.export_weights(ckpt, fp16=args.fp16)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(f".{args.output.name}.part")
    tmp.write_bytes(data)
    tmp.replace(args.output)
    print(
        f"wrote {args.output} ({len(data) / 1e6:.1f} MB, step {ckpt.step}, {'fp16' if args.fp16 else 'fp32'})"
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    ckpt = _read_local_checkpoint(args.checkpoint)
    fps = {side: {k: v for k, v in fp.items() if k != "mean_face"} for side, fp in ckpt.fingerprints.items()}
    print(
        json.dumps(
            {"format": ckpt.format, "step": ckpt.step, "config": ckpt.config, "fingerprints": fps}, indent=1
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m services.trainer.cli train ...`: the train commands without the other services' CLIs."""
    import logging

    from faceswap.errors import ServiceError

    parser = argparse.ArgumentParser(prog="faceswap")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except ServiceError as exc:
        print(f"faceswap: error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
