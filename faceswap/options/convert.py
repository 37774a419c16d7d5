"""ConvertOptions: the converter's knobs, one to one with faceswap.v1.ConvertOptions, defined once."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from faceswap.options import from_proto, option, to_proto, validate

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
    """faceswap.v1.ConvertOptions one to one. In a proto message, a string left empty or a number not
    set keeps the default here; the numbers are ``optional`` there, so 0 can be asked for."""

    mask: str = option("hull", choices=MASKS, help="face mask")
    # Pixels (at the aligned face size) the mask is eroded by, so the seam sits inside the face.
    mask_erode: int = option(4, range=(0, 64), help="pixels at face size the mask is eroded by")
    # Feather width (at the aligned face size): Gaussian blur of the mask edge.
    mask_blur: int = option(4, range=(0, 64), help="pixels at face size the mask edge is blurred by")
    color: str = option("mean", choices=COLORS, help="colour correction")
    blend: str = option("seamless", choices=BLENDS, help="blending")
    smooth: str = option("savgol", choices=SMOOTHERS, help="temporal smoothing of landmarks")
    direction: str = option("a_to_b", choices=DIRECTIONS, help="a_to_b: A's faces become B")
    batch_size: int = option(16, range=(1, 1024), help="faces per model call")
    geometry: str = option(
        "source",
        choices=GEOMETRIES,
        help="source: bend the swapped face onto A's landmarks (keeps A's expression); model: as drawn",
    )
    # The CLI's --method has its own default rule (a model without B's footage = autoencoder).
    method: str = option("retrieval", choices=METHODS, help="where the face comes from", flag=False)

    @property
    def needs_model(self) -> bool:
        return self.method != "retrieval"

    @property
    def needs_faces_b(self) -> bool:
        return self.method in REAL_FACE_METHODS

    def validate(self) -> ConvertOptions:
        return validate(self)

    @property
    def identity(self) -> str:
        """Decoder that renders the swapped face: A's faces go through Decoder B and back."""
        return "b" if self.direction == "a_to_b" else "a"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_proto(cls, msg: Any) -> ConvertOptions:
        """Fields the message carries win (an empty string or an unset number keeps the default)."""
        return from_proto(cls, msg).validate()

    def to_proto(self, msg_cls: Any) -> Any:
        return to_proto(self, msg_cls)
