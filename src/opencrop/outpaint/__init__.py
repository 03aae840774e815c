"""GenCrop's data pipeline (systems.md §7.1): a folder of photos → an outpainted training set.

caption (:class:`~opencrop.outpaint.backends.Blip2Captioner`) → paint (Stable-Diffusion-2 inpainting or the CPU
outpainter of :mod:`opencrop.outpaint.classical`) → bad-outpaint filter (:mod:`opencrop.outpaint.quality`) →
subject segmentation (opencrop's cues or YOLOv8-seg) → heuristic filters and splits. Stages live in
:mod:`opencrop.outpaint.stages`, backends in :mod:`opencrop.outpaint.backends`, the command in
:mod:`opencrop.outpaint.cli` (``opencrop outpaint …``). The result is read by
:func:`opencrop.data.gencrop.load_outpaint` for training (``configs/gencrop_outpaint.yaml``).
"""
