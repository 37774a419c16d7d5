"""ConvertOptions: the converter's knobs, one to one with faceswap.v1.ConvertOptions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from faceswap.errors import InvalidArgument

MASKS = ("hull", "components", "predicted")
COLORS = ("mean", "reinhard", "histogram", "none")
BLENDS = ("alpha", "seamless")
SMOOTHERS = ("none", "oneeuro", "savgol")
DIRECTIONS = ("a_to_b", "b_to_a")
# "source": bend the swapped face onto the source landmarks (keeps A's expression); "model": as drawn.
GEOMETRIES = ("source", "model")
# Where the swapped face's appearance comes from (docs/converter.md, "Methods"):
# "hybrid": B's real faces for detail, the autoencoder for shape and expression, A's light;
# "retrieval": B's real faces only (no model needed); "autoencoder": the decoder's face only.
METHODS = ("hybrid", "retrieval", "autoencoder")
# Methods that render from B's own footage, so a conversion needs B's face set.
REAL_FACE_METHODS = ("hybrid", "retrieval")


@dataclass
class ConvertOptions:
    """Empty strings / zeros in a proto message mean "default" and map onto these defaults."""

    mask: str = "hull"
    # Pixels (at the aligned face size) the mask is eroded by, so the seam sits inside the face.
    mask_erode: int = 4
    # Feather width (at the aligned face size): Gaussian blur of the mask edge.
    mask_blur: int = 4
    color: str = "mean"
    blend: str = "seamless"
    smooth: str = "savgol"
    direction: str = "a_to_b"
    batch_size: int = 16
    geometry: str = "source"
    method: str = "retrieval"

    @property
    def needs_model(self) -> bool:
        return self.method != "retrieval"

    @property
    def needs_faces_b(self) -> bool:
        return self.method in REAL_FACE_METHODS

    def validate(self) -> ConvertOptions:
        for name, allowed in (
            ("mask", MASKS),
            ("color", COLORS),
            ("blend", BLENDS),
            ("smooth", SMOOTHERS),
            ("direction", DIRECTIONS),
            ("geometry", GEOMETRIES),
            ("method", METHODS),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise InvalidArgument(
                    f"unknown {name} {value!r}; choose one of {', '.join(allowed)}", field=f"options.{name}"
                )
        if not 0 <= self.mask_erode <= 64:
            raise InvalidArgument("must be between 0 and 64 pixels", field="options.mask_erode")
        if not 0 <= self.mask_blur <= 64:
            raise InvalidArgument("must be between 0 and 64 pixels", field="options.mask_blur")
        if not 1 <= self.batch_size <= 1024:
            raise InvalidArgument("must be between 1 and 1024", field="options.batch_size")
        return self

    @property
    def identity(self) -> str:
        """Decoder that renders the swapped face: A's faces go through Decoder B and back."""
        return "b" if self.direction == "a_to_b" else "a"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_proto(cls, msg: Any) -> ConvertOptions:
        """Proto3 has no presence for scalars: empty/zero fields keep the dataclass default."""
        defaults = cls()
        values = {}
        for f in fields(cls):
            value = getattr(msg, f.name, None) if msg is not None else None
            values[f.name] = value if value else getattr(defaults, f.name)
        return cls(**values).validate()

    def to_proto(self, msg_cls: Any) -> Any:
        return msg_cls(**self.to_dict())
