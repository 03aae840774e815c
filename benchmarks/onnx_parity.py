"""Max |Δ| per output between each learned model on torch and its ONNX export on onnxruntime: the figures that
``tests/models/test_onnx_export.py`` asserts to be ≤ 1e-4, printed instead of only checked.

The models are built exactly as the test builds them (its ``CONFIGS`` and ``_model``: small configurations, random
weights with the score layer scaled to a spread of ~1, the ImageNet MobileNetV2 where the test uses it), exported,
and compared on the bundled photo with the test's candidates and cues (no cues; for S2CNet also two given object
boxes). HCIC and GAFIC only with ``--all`` (slow exports).

    PYTHONPATH=src python benchmarks/onnx_parity.py [--all]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="also HCIC and GAFIC")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(REPO / "tests" / "models"))
    import test_onnx_export as T  # the test's configurations and weight scaling: one definition

    from opencrop.cues.types import Cues
    from opencrop.io import load_frame
    from opencrop.models.export import export_differences, export_onnx

    names = ["gaic", "s2cnet", "setcrop", "gencrop"] + (["hcic", "gafic"] if args.all else [])
    print(f"# {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            model = T._model(name)
            path = export_onnx(model, Path(tmp) / f"{name}.onnx")
            frame = load_frame(T.PHOTO, model.analysis_size)
            h, w = frame.pixels.shape[:2]
            boxes = np.concatenate([model.candidates((w, h), r) for r in (1.0, 16 / 9, 9 / 16, None)])
            cases = {"no cues": Cues(w, h)}
            if "object_boxes" in model.export_inputs:
                objs = np.array([[150.0, 40.0, 330.0, 500.0], [20.0, 300.0, 200.0, 480.0]], np.float32)
                cases["2 object boxes"] = Cues(w, h, object_boxes=objs)
            for label, cues in cases.items():
                d = export_differences(model, path, frame.pixels, boxes, cues)
                print(f"{name} ({label}): " + ", ".join(f"{k} {v:.1e}" for k, v in d.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
