"""opencrop: the best crop of a photo for any aspect ratio.

>>> import opencrop
>>> crops = opencrop.crop("photo.jpg", ratios=["16:9", "1:1"])
"""

from opencrop.api import Crop, Cropper, crop, score
from opencrop.errors import OpenCropError

__version__ = "0.1.0"
__all__ = ["Crop", "Cropper", "OpenCropError", "__version__", "crop", "score"]
