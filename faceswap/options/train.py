"""TrainOptions: the trainer's knobs, one to one with faceswap.v1.TrainOptions, defined once.

The job API checks a submitted job with ``validate`` (so a bad value is refused at submit, naming the
field), the trainer service maps its request with ``from_proto``, the CLIs take their defaults from
here. The preset names live here too (``PRESET_NAMES``), so the job API knows them without torch;
``faceswap.model.network.PRESETS`` defines each one (a test keeps the two lists equal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faceswap.errors import InvalidArgument
from faceswap.options import option, validate

PRESET_NAMES = ("original", "lite", "demo")
LOSS_NAMES = ("l1", "l1_ssim")
AMP_MODES = ("auto", "bf16", "fp16", "off")
# The one default of every entry point (trainer CLI, job API, swap CLI, service): a proto's 0 = this.
DEFAULT_STEPS = 1000
DEFAULT_SAVE_EVERY = 500
MAX_STEPS = 10_000_000  # the option's range; FACESWAP_MAX_TRAIN_STEPS may cap it lower per install


@dataclass
class TrainOptions:
    """faceswap.v1.TrainOptions; "" / 0 fields take the preset's value unless said otherwise."""

    # "" = the checkpoint's or warm start's preset, else "lite"
    preset: str = option("", choices=("", *PRESET_NAMES), help="model + recipe")
    steps: int = option(DEFAULT_STEPS, range=(1, MAX_STEPS), help="train until this step count")
    batch_size: int = option(0, range=(0, 4096), help="per identity (0 = the preset's)")
    learning_rate: float = option(0.0, range=(0.0, 1.0), help="learning rate (0 = the preset's)")
    loss: str = option("", choices=("", *LOSS_NAMES), help='loss ("" = the preset\'s)')
    save_every: int = option(
        DEFAULT_SAVE_EVERY, range=(1, MAX_STEPS), help="checkpoint + preview every N steps"
    )
    seed: int = option(0, help="random seed")
    max_seconds: float = option(
        0.0, range=(0.0, 30 * 86400.0), help="wall-clock budget; saves and stops (0 = none)"
    )
    warm_start: str = option("", help="object key, model prefix or local file of a checkpoint", flag=False)
    allow_foreign_warm_start: bool = option(False, help="use a warm start trained on other faces", flag=False)
    # ignore warm_start (a checkpoint under model_prefix is still refused)
    from_scratch: bool = option(False, help="start from random weights", flag=False)
    size: int = option(0, range=(0, 512), help="face size (0 = the face sets' size)")
    amp: str = option("auto", choices=AMP_MODES, help="mixed precision: auto (bf16 on CUDA), bf16, fp16, off")
    # Run-time settings of one process (not in the proto, no range to check at submit).
    device: str = option("", help="'' = cuda when present, else cpu", flag=False)
    threads: int = option(0, help="torch threads; 0 = FACESWAP_THREADS, 0 there = all cores", flag=False)
    report_every: float = option(1.0, help="seconds between progress callbacks", flag=False)
    preview_faces: int = option(4, help="faces per identity in the preview", flag=False)

    def validate(self) -> TrainOptions:
        return validate(self)

    @classmethod
    def from_proto(cls, msg: Any, bucket: str = "") -> TrainOptions:
        """A zero / empty field keeps the default (DEFAULT_STEPS, DEFAULT_SAVE_EVERY, 'auto' ...);
        the warm start is a reference in this store's bucket (another bucket is refused)."""
        if msg is None:
            return cls()
        if bucket and msg.warm_start.bucket and msg.warm_start.bucket != bucket:
            raise InvalidArgument(
                f"bucket {msg.warm_start.bucket!r} is not served here (this service uses {bucket!r})",
                field="options.warm_start.bucket",
            )
        defaults = cls()
        return cls(
            preset=msg.preset,
            steps=int(msg.steps) or defaults.steps,
            batch_size=int(msg.batch_size),
            learning_rate=float(msg.learning_rate),
            loss=msg.loss,
            save_every=int(msg.save_every) or defaults.save_every,
            seed=int(msg.seed),
            max_seconds=float(msg.max_seconds),
            warm_start=msg.warm_start.key,
            allow_foreign_warm_start=msg.allow_foreign_warm_start,
            from_scratch=msg.from_scratch,
            size=int(msg.size),
            amp=msg.amp or defaults.amp,
        )

    def to_proto(self, msg_cls: Any, ref_cls: Any = None, bucket: str = "") -> Any:
        msg = msg_cls(
            preset=self.preset,
            steps=self.steps,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            loss=self.loss,
            save_every=self.save_every,
            seed=self.seed,
            max_seconds=self.max_seconds,
            allow_foreign_warm_start=self.allow_foreign_warm_start,
            from_scratch=self.from_scratch,
            size=self.size,
            amp=self.amp,
        )
        if self.warm_start and ref_cls is not None:
            msg.warm_start.CopyFrom(ref_cls(bucket=bucket, key=self.warm_start))
        return msg
