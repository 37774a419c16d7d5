"""Model presets: output shapes, mask channel, parameter budgets, bad presets/sizes."""

from __future__ import annotations

import pytest
import torch

from faceswap.errors import InvalidArgument
from faceswap.model.network import PRESETS, build_model, count_parameters


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("size", [64, 128])
def test_every_preset_maps_faces_to_faces_of_the_same_size(preset: str, size: int) -> None:
    if preset == "original" and size == 128:
        pytest.skip("183M parameters: too slow for the default suite")
    model = build_model(preset, size)
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        for identity in ("a", "b"):
            image, mask = model(x, identity)
            assert image.shape == (2, 3, size, size)
            assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
            if PRESETS[preset].model.mask:
                assert mask is not None and mask.shape == (2, 1, size, size)
            else:
                assert mask is None


def test_architectures_match_the_seed_and_the_budgets() -> None:
    original = build_model("original")
    # The seed's deepfakes model at 64 px: ~82M parameters, 1024-wide dense layers.
    assert original.encoder.dense1.out_features == 1024
    assert original.encoder.dense2.out_features == 4 * 4 * 1024
    assert 80e6 < count_parameters(original) < 85e6
    assert 6e6 < count_parameters(build_model("lite")) < 8e6
    # The demo's fp16 weights must stay under 25 MB to live in the repo.
    assert count_parameters(build_model("demo")) * 2 < 25e6
    # The encoder is shared; each identity has its own decoder.
    assert set(original.decoders) == {"a", "b"}


def test_unknown_preset_size_or_identity_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="preset"):
        build_model("huge")
    with pytest.raises(InvalidArgument, match="size"):
        build_model("lite", 40)
    with pytest.raises(InvalidArgument, match="identity"):
        build_model("lite", 16)(torch.rand(1, 3, 16, 16), "c")
