"""GenCrop's bad-outpaint classifier (systems.md §7.1 step 3): ResNet-50, two classes (good = 0, bad = 1), 128×128
input (stretched, /255, ImageNet-normalised); an image is bad when ``P(bad) > 0.5``.

It is a registered model (``outpaint_quality``) so the shared trainer trains it (``configs/gencrop_quality.yaml``:
class weights [1, 10], label smoothing 0.1, AdamW 1e-3, warm-up + cosine, 100 epochs, batch 64) on a folder with
``good/`` and ``bad/`` sub-folders (``load_gencrop(root, source="quality")``). The published
``quality_model/model.pt`` of jhong93/gencrop (a timm ``resnet50`` state dict with a 2-way ``fc``) loads with
:meth:`QualityClassifier.load_published`; the parameter names are the same (torchvision = timm for ResNet-50).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from opencrop.errors import ModelFileError
from opencrop.models.checkpoint import read_torch_file
from opencrop.models.learned import LearnedCropModel, build_with_weights
from opencrop.models.preprocess import Preprocess
from opencrop.models.registry import register_model

__all__ = ["QualityClassifier", "outpaint_quality"]

CLASS_WEIGHTS = (1.0, 10.0)


class QualityClassifier(LearnedCropModel):
    """Binary good / bad outpaint classifier (module docstring). Not a crop model: it has no ``propose``."""

    is_cropper = False  # trained with the shared trainer, but proposes no crops
    name = "outpaint_quality"

    def __init__(self, size: int = 128, pretrained_backbone: bool = False, backbone_weights: str | None = None,
                 label_smoothing: float = 0.1) -> None:
        super().__init__(Preprocess(resize="fixed", size=int(size), pixel_scale=255.0, antialias=True),
                         {"size": int(size), "label_smoothing": float(label_smoothing)})
        from opencrop.nn import create_backbone

        self.net = create_backbone("resnet50", pretrained=bool(pretrained_backbone), weights=backbone_weights,
                                   with_classifier=True)
        self.net.fc = nn.Linear(2048, 2)
        self.label_smoothing = float(label_smoothing)

    def forward(self, images: Tensor) -> Tensor:  # type: ignore[override]
        """``Tensor[B, 3, S, S]`` → logits ``Tensor[B, 2]`` (good, bad)."""
        return self.net.classify(images)

    @torch.no_grad()
    def p_bad(self, images: list[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """``P(bad)`` ``[N]`` of ``[H, W, 3]`` uint8 RGB images (batched, eval mode)."""
        self.eval()
        out = []
        for i in range(0, len(images), batch_size):
            x = torch.stack([self.preprocess(im)[0] for im in images[i : i + batch_size]]).to(self.device)
            out.append(F.softmax(self(x).float(), dim=1)[:, 1].cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def compute_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Weighted, label-smoothed cross entropy on ``batch["image"]`` / ``batch["label"]``."""
        logits = self(batch["image"])
        w = torch.tensor(CLASS_WEIGHTS, device=logits.device, dtype=logits.dtype)
        return {"loss": F.cross_entropy(logits, batch["label"], weight=w, label_smoothing=self.label_smoothing)}

    def load_published(self, path: str | os.PathLike[str]) -> None:
        """Load jhong93/gencrop's ``quality_model/model.pt`` (a bare timm state dict, ``module.`` prefixes
        tolerated); raises :class:`ModelFileError` naming every mismatch."""
        state = read_torch_file(path)
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            self.load_state(state["model"], source=path)
            return
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise ModelFileError(path, "expected a ResNet-50 state dict")
        state = {"net." + k.removeprefix("module."): v for k, v in state.items()}
        self.load_state(state, source=path)
        self.weights_source = str(path)

    # ------------------------------------------------------------------ trainer hook
    def training_datasets(self, train: list, val: list, test: list | None, data_cfg: Any, seed: int) -> tuple:
        return (_Images(train, self.preprocess, float(getattr(data_cfg, "flip", 0.5)), seed, True),
                _Images(val, self.preprocess, 0.0, seed), _Images(test, self.preprocess, 0.0, seed) if test else None)

    def evaluate_dataset(self, dataset: Any, device: Any = "cpu", amp: bool = False) -> dict[str, float]:
        """Accuracy, bad-class recall / precision and loss over ``dataset``."""
        from opencrop.train.datasets import batch_to

        was = self.training
        self.eval()
        preds, labels, loss = [], [], 0.0
        try:
            with torch.no_grad():
                for i in range(0, len(dataset), 32):
                    b = batch_to(_collate([dataset[j] for j in range(i, min(len(dataset), i + 32))]), device)
                    preds.append(self(b["image"]).argmax(1).cpu().numpy())
                    labels.append(b["label"].cpu().numpy())
                    loss += float(self.compute_loss(b)["loss"]) * len(labels[-1])
        finally:
            self.train(was)
        p, y = np.concatenate(preds), np.concatenate(labels)
        tp = float(((p == 1) & (y == 1)).sum())
        return {"accuracy": float((p == y).mean()), "bad_recall": tp / max(1.0, float((y == 1).sum())),
                "bad_precision": tp / max(1.0, float((p == 1).sum())), "loss": loss / max(1, len(y))}


class _Images(torch.utils.data.Dataset):
    """Labelled images (``record.extra["label"]``), flip + colour jitter when training."""

    def __init__(self, records: list, preprocess: Preprocess, flip: float, seed: int, train: bool = False) -> None:
        self.records, self.skipped = list(records), []
        self.pre, self.flip, self.seed, self.train, self.epoch = preprocess, flip, seed, train, 0

    collate = staticmethod(lambda s: _collate(s))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from opencrop.train.datasets import photometric_distort, read_image

        r = self.records[i]
        x, _ = self.pre(read_image(r.image_path))
        if self.train:
            rng = np.random.default_rng([self.seed, 31, self.epoch, i])
            mean = torch.tensor(self.pre.mean).view(3, 1, 1)
            std = torch.tensor(self.pre.std).view(3, 1, 1)
            px = photometric_distort((x * std + mean) * 255.0, rng, "colorjitter")
            x = self.pre.normalize(px)
            if rng.random() < self.flip:
                x = x.flip(2)
        return {"image": x, "label": torch.tensor(int(r.extra["label"])), "name": r.name}


def _collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {"image": torch.stack([s["image"] for s in samples]), "label": torch.stack([s["label"] for s in samples]),
            "name": [s["name"] for s in samples]}


@register_model("outpaint_quality")
def outpaint_quality(weights: str | os.PathLike[str] | None = None, **cfg: Any) -> QualityClassifier:
    """Bad-outpaint classifier; ``weights``: an opencrop model file (use :meth:`QualityClassifier.load_published`
    for the original ``model.pt``)."""
    return build_with_weights(QualityClassifier, weights, **cfg)
