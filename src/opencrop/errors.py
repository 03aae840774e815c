"""Typed errors. Every error that concerns a file names the file and the problem."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CueUnavailableError",
    "DataFormatError",
    "DecodeError",
    "ImageTooLargeError",
    "MissingExtraError",
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


class CueUnavailableError(OpenCropError):
    """A cue the cropper needs cannot run here (its runtime is not installed, its model file is missing or fails
    its sha256): cropping without it could cut faces or people. Fetch the files (``opencrop models fetch``) or ask
    to degrade explicitly (``--degrade``, ``degrade=True``, ``OPENCROP_DEGRADE=1``); a degraded result says so in
    its ``degraded`` field and notes."""

    def __init__(self, missing: dict[str, str]) -> None:
        self.missing = dict(missing)
        why = "; ".join(f"{cue}: {reason}" for cue, reason in sorted(self.missing.items()))
        super().__init__(
            f"cue(s) {', '.join(sorted(self.missing))} cannot run ({why}). Run `opencrop models fetch` (and "
            f"`opencrop models verify`), or pass --degrade to crop without them (every result then says so)"
        )


#: optional dependency (top-level module) → the extra that installs it
EXTRAS = {"torch": "torch", "starlette": "serve", "uvicorn": "serve", "python_multipart": "serve", "ray": "ray",
          "onnx": "export", "pyarrow": "ray"}


class MissingExtraError(OpenCropError):
    """What was asked for needs an optional dependency that is not installed (a usage error, exit 2): the light
    install crops without torch; learned models, training and evaluation need ``opencrop[torch]``."""

    def __init__(self, what: str, module: str) -> None:
        self.module = module
        self.extra = EXTRAS.get(module.split(".")[0], module)
        super().__init__(f"{what} needs {module.split('.')[0]}, which is not installed: "
                         f"pip install 'opencrop[{self.extra}]'")
