"""Dataset adapters (one per on-disk format) and the synthetic generator."""

from opencrop.data.record import CropRecord

__all__ = ["CropRecord"]
