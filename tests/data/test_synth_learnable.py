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
    root = synthesize("gaicd", tmp_path, n=200, seed=123, size=(256, 192))
    recs = load_gaicd(root, split="all")
    xtr, ytr, _ = _crops([r for r in recs if r.split == "train"])
    xte, yte, cte = _crops([r for r in recs if r.split == "test"])
    nn = torch.nn
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 1),
    )
    xt, yt = torch.from_numpy(xtr), torch.from_numpy((ytr - 2.95) / 0.8)
    epochs, batch = 8, 256
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * -(-len(xt) // batch))
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), batch):
            idx = perm[i : i + batch]
            x = xt[idx]
            flip = torch.rand(len(idx)) < 0.5  # the composition rules are left-right symmetric
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            loss = nn.functional.smooth_l1_loss(net(x).squeeze(1), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        pred = net(torch.from_numpy(xte)).squeeze(1).numpy()
    splits = np.cumsum(cte)[:-1]
    m = gaicd_metrics(np.split(pred, splits), np.split(yte, splits))
    print(f"synthetic learnability: {len(cte)} held-out images, SRCC {m['srcc']:.3f}, Acc5 {m['acc5']:.1f}")
    assert m["srcc"] >= 0.7, m
