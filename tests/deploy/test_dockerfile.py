"""Static checks of the container image recipe (no docker here: the build itself runs in CI/registry).

The image must run as a non-root user, carry ffmpeg and the dlib models, offer CPU and CUDA variants,
and copy only files that exist in the build context.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations and heredocs folded."""
    text = DOCKERFILE.read_text()
    text = re.sub(r"<<'EOF'\n.*?\nEOF\n", "<<heredoc\n", text, flags=re.S)
    text = re.sub(r"\\\n", " ", text)
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def stages() -> dict[str, list[tuple[str, str]]]:
    current, out = "", {}
    for word, rest in instructions():
        if word == "FROM":
            current = rest.split(" AS ")[-1].strip() if " AS " in rest else rest
            out[current] = []
        elif current:
            out[current].append((word, rest))
    return out


def test_cpu_and_cuda_variants_share_one_final_stage() -> None:
    found = stages()
    assert {"build", "runtime-cpu", "runtime-cuda", "final"} <= set(found)
    froms = [rest for word, rest in instructions() if word == "FROM"]
    assert "runtime-${VARIANT} AS final" in froms
    args = [rest for word, rest in instructions() if word == "ARG"]
    assert any(a.startswith("VARIANT=cpu") for a in args)
    # -base: torch's wheels bring the CUDA libraries; the toolkit's driver check is off.
    assert any(a.startswith("CUDA_IMAGE=nvidia/cuda:") and "-base-" in a for a in args)
    cuda_env = " ".join(rest for word, rest in found["runtime-cuda"] if word == "ENV")
    assert "NVIDIA_DISABLE_REQUIRE=true" in cuda_env
    assert any(a.startswith("PYTHON_IMAGE=python:3.11-slim") for a in args)


def test_final_image_is_non_root_with_ffmpeg_models_and_entrypoint() -> None:
    final = stages()["final"]
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    runs = " ".join(rest for word, rest in final if word == "RUN")
    assert "ffmpeg" in runs and "useradd" in runs
    assert ("ENTRYPOINT", '["faceswap"]') in final
    build = stages()["build"]
    build_runs = [rest for word, rest in build if word == "RUN"]
    assert any("requirements.txt" in r for r in build_runs)
    # Layers: torch alone (keyed on its pin only), the models' wheel, then the rest; pip caches mounted.
    torch_run = next(r for r in build_runs if "TORCH_INDEX_URL" in r)
    assert "requirements.txt" not in torch_run and "torch.txt" in torch_run
    copies = [rest for word, rest in build if word == "COPY"]
    assert copies.index("--from=pins /torch.txt ./") < copies.index("requirements.txt constraints.txt ./")
    assert all("--mount=type=cache,target=/root/.cache/pip" in r for r in build_runs if "pip " in r)
    main = next(r for r in build_runs if "-r requirements.txt" in r)
    assert "--find-links /wheels" in main  # the built models wheel: no source build here
    assert "PIP_NO_CACHE_DIR" not in DOCKERFILE.read_text()
    # The dlib models come from the face-recognition-models wheel the requirements pin.
    assert "face-recognition-models" in (ROOT / "requirements.txt").read_text()
    assert "shape_predictor_68_face_landmarks.dat" in DOCKERFILE.read_text()


def test_copied_paths_exist_in_the_context() -> None:
    for word, rest in instructions():
        if word != "COPY" or "--from=" in rest:
            continue
        parts = [p for p in rest.split() if not p.startswith("--")]
        for src in parts[:-1]:
            assert (ROOT / src).exists(), f"COPY source {src} missing from the build context"
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text()
    assert "!services/" in ignore and "!faceswap/" in ignore and "!requirements.txt" in ignore
