"""Typed errors. Every error that concerns a file names the file and the problem."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "DataFormatError",
    "DecodeError",
    "ImageTooLargeError",
    "ModelFileError",
    "OpenCropError",
    "UnsupportedImageError",
    "UntrainedModelError",
    "UpscaleError",
]


class OpenCropError(Exception):
    """Base class of every error opencrop raises on purpose."""


class _FileError(OpenCropError):
    def __init__(self, source: str | Path | None, problem: str) -> None:
        self.source = str(source) if source is not None else "<memory>"
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class DecodeError(_FileError):
    """The file is not a readable image (corrupt, truncated, empty, not an image)."""


class UnsupportedImageError(_FileError):
    """A readable file whose content opencrop cannot crop (zero size, unsupported format)."""


class ImageTooLargeError(_FileError):
    """The image has more pixels than the configured limit (decompression-bomb guard)."""


class DataFormatError(_FileError):
    """A dataset/annotation file is malformed; the message names the file and, where known, the line."""

    def __init__(self, source: str | Path | None, problem: str, line: int | None = None) -> None:
        self.line = line
        where = f"{source}:{line}" if line is not None else source
        super().__init__(where, problem)


class ModelFileError(_FileError):
    """A model/weight file is missing, corrupt (bad sha256) or does not fit the model."""


class UntrainedModelError(OpenCropError):
    """A learned model has no trained weights: cropping or evaluating with it would give random results.
    Give weights (``--weights FILE`` / a pretrained tag) or ask for random weights explicitly
    (``--random-weights``, ``random_weights=True``). A usage error (exit 2)."""

    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(
            f"model {model!r} has no trained weights: its crops would be random. Give --weights FILE (an opencrop "
            f"model file or training checkpoint), or --random-weights to run it untrained on purpose"
        )


class UpscaleError(_FileError):
    """The requested output size is larger than the crop box: it would be upscaled, which was not asked for."""
