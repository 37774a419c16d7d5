"""Which files are images and which are videos, by extension: the one list every stage uses (the job
API's submit check, the detector's photo folders, the converter's input, the evaluation's B set)."""

from __future__ import annotations

from pathlib import PurePath

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
# What ffmpeg reads as a video container here.
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts")


def is_image(name: str | PurePath) -> bool:
    return PurePath(name).suffix.lower() in IMAGE_EXTENSIONS


def is_video(name: str | PurePath) -> bool:
    return PurePath(name).suffix.lower() in VIDEO_EXTENSIONS
