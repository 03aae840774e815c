"""Resource limits, all configurable (API argument, CLI flag, server option, environment variable), safe by default.

| limit | default | environment variable | CLI flag |
|---|---|---|---|
| input pixels (bomb guard, checked before decoding) | 100 MP | ``OPENCROP_MAX_PIXELS`` | ``--max-pixels`` |
| output pixels (``--size``) | 40 MP | ``OPENCROP_MAX_OUTPUT_PIXELS`` | ``--max-output-pixels`` |
| upscaling (an output larger than its crop box) | refused | ``OPENCROP_ALLOW_UPSCALE=1`` | ``--allow-upscale`` |

Pillow's own process-wide ``Image.MAX_IMAGE_PIXELS`` is left as it is; an input limit above Pillow's refusal
threshold (twice that value) is an error rather than a limit that silently does not apply.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_OUTPUT_PIXELS", "DEFAULT_MAX_PIXELS", "Limits", "env_flag"]

DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_MAX_OUTPUT_PIXELS = 40_000_000


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        v = int(float(raw))
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a positive number of pixels") from None
    return v


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is set to 1 / true / yes / on."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Limits:
    """The limits of one :class:`~opencrop.api.Cropper` (module docstring). ``None`` = the environment variable,
    else the default."""

    max_pixels: int | None = None
    max_output_pixels: int | None = None
    allow_upscale: bool | None = None

    def __post_init__(self) -> None:
        from PIL import Image

        mp = self.max_pixels if self.max_pixels is not None else _env_int("OPENCROP_MAX_PIXELS", DEFAULT_MAX_PIXELS)
        mo = (self.max_output_pixels if self.max_output_pixels is not None
              else _env_int("OPENCROP_MAX_OUTPUT_PIXELS", DEFAULT_MAX_OUTPUT_PIXELS))
        for what, v in (("max_pixels", mp), ("max_output_pixels", mo)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{what} must be a positive number of pixels, got {v!r}")
        pil = Image.MAX_IMAGE_PIXELS
        if pil is not None and mp > 2 * pil:
            raise ValueError(f"max_pixels {mp:,} is above Pillow's decompression-bomb refusal at {2 * pil:,} pixels "
                             f"(PIL.Image.MAX_IMAGE_PIXELS = {pil:,}); raise that first if you really need it")
        object.__setattr__(self, "max_pixels", mp)
        object.__setattr__(self, "max_output_pixels", mo)
        up = self.allow_upscale if self.allow_upscale is not None else env_flag("OPENCROP_ALLOW_UPSCALE")
        object.__setattr__(self, "allow_upscale", bool(up))
