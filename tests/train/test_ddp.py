"""DDP under torchrun on CPU (gloo): two ranks train, gradients agree, only rank 0 writes. Slow (spawns processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

SRC = Path(__file__).resolve().parents[2] / "src"

SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    import torch
    from PIL import Image
    from torch import nn
    from opencrop.candidates import gaic_grid
    from opencrop.data.record import CropRecord
    from opencrop.models.learned import LearnedCropModel
    from opencrop.models.preprocess import Preprocess
    from opencrop.models.registry import register_model
    from opencrop.train.recipe import Recipe
    from opencrop.train.trainer import train

    class Pooled(LearnedCropModel):
        name = "_ddp_toy"
        def __init__(self):
            super().__init__(Preprocess(resize="fixed", size=64), {})
            self.conv = nn.Conv2d(3, 4, 32, stride=32)
            self.fc = nn.Linear(4, 1)
        def forward_features(self, images):
            return self.conv(images)
        def forward_scores(self, features, rois, **extra):
            f = features[rois[:, 0].long()].mean((-1, -2))
            return self.fc(f * (rois[:, 3:4] - rois[:, 1:2]) / 64).squeeze(-1)
        def compute_loss(self, batch):
            return {"loss": ((self.predict_batch(batch) - batch["mos"] / 5) ** 2).mean()}

    register_model("_ddp_toy")(lambda **kw: Pooled())
    out, tmp = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(0)
    recs = []
    for i in range(6):
        p = f"{tmp}/{i}.png"
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(p)
        c = gaic_grid(64, 48)
        recs.append(CropRecord(name=f"{i}.png", image_path=p, crops=c, scores=1 + 4 * c[:, 2] / 64))
    r = Recipe.from_dict({"model": {"name": "_ddp_toy"}, "data": {"val_split": "none", "test_split": None,
                          "crops_per_image": 8}, "optim": {"lr": 1e-2}, "train": {"epochs": 2, "amp": False}})
    train(r, out, records={"train": recs}, device="cpu", progress=False)
    print("rank", torch.distributed.get_rank(), "done")
''')


@pytest.mark.slow
def test_torchrun_two_cpu_ranks(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
         str(tmp_path / "run"), str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "rank 0 done" in res.stdout and "rank 1 done" in res.stdout
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ck["epoch"] == 2 and ck["step"] == 2 * 3  # 6 images / 2 ranks = 3 steps per epoch
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if p.suffix in (".pt", ".csv", ".json")) == [
        "best.pt", "last.pt", "log.csv", "metrics.json", "split.json"]
