"""The shared-Encoder / two-Decoder autoencoder of the classic deepfakes model, in PyTorch.

One Encoder learns a face code common to both people; Decoder "a" rebuilds person A from it and
Decoder "b" person B. Swapping A->B runs A's face through the Encoder and B's Decoder.

Presets (``PRESETS``) fix the architecture; ``build_model(preset, size)`` makes one and
``build_model_from_config(config)`` rebuilds the one a checkpoint describes.

- ``original``: the seed's model at 64 px: conv 128/256/512/1024 stride 2 + LeakyReLU, Dense(1024),
  Dense(4*4*1024), reshape, upscale(512); decoders upscale 256/128/64 + conv 5x5 to 3 channels.
- ``lite``: the same shape at a quarter of the width (about 7M parameters), trains on a 2-core CPU.
- ``demo``: the lite encoder with wider, batch-normalised decoders that also predict a mask channel,
  trained with L1 + SSIM, extra weight on the face / eyes / mouth and a warm-up + cosine learning
  rate: the recipe chosen by measurement (docs/trainer.md).

Inputs are BGR floats in [0, 1], NCHW, ``size`` x ``size``; outputs are in [0, 1] too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import Tensor, nn

from faceswap.errors import FailedPrecondition, InvalidArgument

IDENTITIES = ("a", "b")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the architecture (stored in checkpoints, compared on resume)."""

    preset: str
    size: int = 64
    encoder_channels: tuple[int, ...] = (128, 256, 512, 1024)
    dense: int = 1024
    bottleneck: int = 1024  # channels of the dense output, reshaped to (size/16)^2 pixels
    encoder_upscale: int = 512
    decoder_channels: tuple[int, ...] = (256, 128, 64)
    residual_blocks: int = 0  # per decoder stage
    norm: str = "none"  # "none" | "batch" | "group"
    mask: bool = False  # decoder predicts a face mask as a 4th channel

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["encoder_channels"] = list(self.encoder_channels)
        data["decoder_channels"] = list(self.decoder_channels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        for key in ("encoder_channels", "decoder_channels"):
            if key in kwargs:
                kwargs[key] = tuple(int(c) for c in kwargs[key])
        return cls(**kwargs)


@dataclass(frozen=True)
class Preset:
    """An architecture plus the training defaults that go with it."""

    model: ModelConfig
    batch_size: int = 16
    learning_rate: float = 5e-5
    betas: tuple[float, float] = (0.5, 0.999)
    loss: str = "l1"  # "l1" | "l1_ssim"
    schedule: str = "constant"  # "constant" | "warmup_cosine"
    warmup_steps: int = 0
    face_weight: float = 0.0  # extra loss weight inside the landmark hull
    eye_mouth_weight: float = 0.0  # extra loss weight on eyes and mouth
    channels_last: bool = False
    # A warm-started run fine-tunes at this share of the learning rate, without warm-up: the warm
    # start ended its schedule low, and jumping back to the peak undoes part of it (measured).
    fine_tune_lr_scale: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    "original": Preset(model=ModelConfig(preset="original")),
    "lite": Preset(
        model=ModelConfig(
            preset="lite",
            encoder_channels=(32, 64, 128, 256),
            dense=512,
            bottleneck=256,
            encoder_upscale=128,
            decoder_channels=(64, 32, 16),
        ),
        learning_rate=1e-4,
    ),
    "demo": Preset(
        model=ModelConfig(
            preset="demo",
            encoder_channels=(32, 64, 128, 256),
            dense=512,
            bottleneck=256,
            encoder_upscale=128,
            decoder_channels=(96, 48, 32),
            # Residual blocks measured slower per step and no better per step (docs/trainer.md).
            residual_blocks=0,
            norm="batch",
            mask=True,
        ),
        batch_size=16,
        learning_rate=3e-4,
        betas=(0.5, 0.999),
        loss="l1_ssim",
        schedule="warmup_cosine",
        warmup_steps=100,
        face_weight=1.0,
        eye_mouth_weight=2.0,
        channels_last=True,
        fine_tune_lr_scale=0.1,
    ),
}


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.Identity()


class Upscale(nn.Sequential):
    """conv 3x3 to 4x channels + LeakyReLU + PixelShuffle(2): doubles the resolution."""

    def __init__(self, cin: int, cout: int, norm: str = "none") -> None:
        super().__init__(
            nn.Conv2d(cin, cout * 4, 3, padding=1),
            _norm(norm, cout * 4),
            nn.LeakyReLU(0.1),
            nn.PixelShuffle(2),
        )


class ResidualBlock(nn.Module):
    """conv-norm-act-conv-norm + skip: sharpens detail without changing the size."""

    def __init__(self, channels: int, norm: str = "none") -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            _norm(norm, channels),
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, channels, 3, padding=1),
            _norm(norm, channels),
        )
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.body(x))


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for cout in cfg.encoder_channels:
            layers += [nn.Conv2d(cin, cout, 5, stride=2, padding=2), nn.LeakyReLU(0.1)]
            cin = cout
        self.convs = nn.Sequential(*layers)
        self.code_size = cfg.size // 2 ** len(cfg.encoder_channels)
        self.bottleneck = cfg.bottleneck
        self.dense1 = nn.Linear(cin * self.code_size**2, cfg.dense)
        self.dense2 = nn.Linear(cfg.dense, cfg.bottleneck * self.code_size**2)
        self.upscale = Upscale(cfg.bottleneck, cfg.encoder_upscale)

    def forward(self, x: Tensor) -> Tensor:
        x = self.convs(x)
        x = self.dense2(self.dense1(torch.flatten(x, 1)))
        x = x.view(-1, self.bottleneck, self.code_size, self.code_size)
        return self.upscale(x)


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = cfg.encoder_upscale
        for cout in cfg.decoder_channels:
            layers.append(Upscale(cin, cout, cfg.norm))
            layers += [ResidualBlock(cout, cfg.norm) for _ in range(cfg.residual_blocks)]
            cin = cout
        self.body = nn.Sequential(*layers)
        self.out_channels = 4 if cfg.mask else 3
        self.to_image = nn.Conv2d(cin, self.out_channels, 5, padding=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.to_image(self.body(x)))


class FaceSwapModel(nn.Module):
    """Shared encoder + one decoder per identity ("a", "b")."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.decoders = nn.ModuleDict({name: Decoder(cfg) for name in IDENTITIES})

    @property
    def size(self) -> int:
        return self.config.size

    def forward(self, x: Tensor, identity: str) -> tuple[Tensor, Tensor | None]:
        """(image, mask or None) for faces x decoded as `identity` ("a" or "b")."""
        if identity not in self.decoders:
            raise InvalidArgument(f"identity must be 'a' or 'b', not {identity!r}", field="identity")
        out = self.decoders[identity](self.encoder(x))
        if out.shape[1] == 4:
            return out[:, :3], out[:, 3:]
        return out, None


def preset_names() -> list[str]:
    return list(PRESETS)


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise InvalidArgument(
            f"unknown preset {name!r} (choose from {', '.join(PRESETS)})", field="preset"
        ) from None


def model_config(preset: str = "lite", size: int = 64) -> ModelConfig:
    cfg = get_preset(preset).model
    depth = 2 ** len(cfg.encoder_channels)
    if size < depth or size % depth:
        raise InvalidArgument(f"size must be a positive multiple of {depth}, not {size}", field="size")
    return ModelConfig.from_dict({**cfg.to_dict(), "size": int(size)})


def build_model(preset: str = "lite", size: int = 64) -> FaceSwapModel:
    return FaceSwapModel(model_config(preset, size))


def build_model_from_config(config: dict[str, Any]) -> FaceSwapModel:
    """The model a checkpoint's config describes (FailedPrecondition when it cannot be built)."""
    try:
        return FaceSwapModel(ModelConfig.from_dict(config))
    except (TypeError, ValueError, KeyError) as exc:
        raise FailedPrecondition(f"checkpoint model config is not buildable: {exc}") from exc


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
