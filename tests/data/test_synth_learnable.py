"""The synthetic MOS is learnable from pixels: a small CNN trained on synthetic GAICD crops ranks the crops of
held-out images with per-image SRCC ≥ 0.7 (slow: a few minutes on a busy 2-core CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opencrop.data import load_gaicd
from opencrop.data.synth import synthesize
from opencrop.eval.metrics import gaicd_metrics


def _crops(records: list, size: int = 32) -> tuple[np.ndarray, np.ndarray, list[int]]:
    from PIL import Image

    xs, ys, counts = [], [], []
    for r in records:
        im = Image.open(r.image_path).convert("RGB")
        for b in r.crops:
            xs.append(np.asarray(im.resize((size, size), Image.BILINEAR, box=tuple(float(v) for v in b))))
        ys.append(r.scores)
        counts.append(len(r.crops))
    x = np.stack(xs).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    return x, np.concatenate(ys).astype(np.float32), counts


@pytest.mark.slow
def test_cnn_learns_synthetic_mos(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    root = synthesize("gaicd", tmp_path, n=160, seed=123, size=(256, 192))
    recs = load_gaicd(root, split="all")
    train = [r for r in recs if r.split == "train"]
    test = [r for r in recs if r.split == "test"]
    xtr, ytr, _ = _crops(train)
    xte, yte, cte = _crops(test)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * 4 * 4, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1),
    )
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy((ytr - 2.95) / 0.8)
    for _ in range(6):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 256):
            idx = perm[i : i + 256]
            loss = torch.nn.functional.smooth_l1_loss(net(xt[idx]).squeeze(1), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = net(torch.from_numpy(xte)).squeeze(1).numpy()
    splits = np.cumsum(cte)[:-1]
    m = gaicd_metrics(np.split(pred, splits), np.split(yte, splits))
    print(f"synthetic learnability: SRCC {m['srcc']:.3f}, Acc5 {m['acc5']:.1f}")
    assert m["srcc"] >= 0.7, m
