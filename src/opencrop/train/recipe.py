"""Training recipes: YAML data, validated into typed sections (style.md §6.10).

A recipe file looks like ``configs/gaic_gaicd.yaml``::

    version: 1
    model: {name: gaic, kwargs: {backbone: mobilenet_v2, pretrained_backbone: true}}
    data: {format: gaicd, root: null, val_split: none, crops_per_image: 64, flip: 0.5, photometric: ssd}
    optim: {name: adam, lr: 1.0e-4}
    schedule: {name: constant}
    train: {epochs: 80, batch_size: 1, seed: 0, module_mode: eval_after_first_epoch}

Unknown keys are errors that name the file, the key path and the closest valid key. Dotted overrides
(``train.epochs=5``) are applied before validation; their values are parsed as YAML scalars.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "MODULE_MODES",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "Recipe",
    "RecipeError",
    "ScheduleConfig",
    "TrainConfig",
    "apply_overrides",
    "load_recipe",
]

RECIPE_VERSION = 1


class RecipeError(ValueError):
    """A recipe is malformed: the message gives the file, the key path, the problem and the fix."""


@dataclass
class ModelConfig:
    """``create_model(name, **kwargs)``."""

    name: str = "gaic"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Where the records come from and how training samples are made.

    Attributes:
        format: dataset adapter, ``opencrop.data.load_<format>(root, split=...)`` (``"gaicd"``, ``"cpc"`` …).
        root: dataset directory (``opencrop train --data DIR`` overrides it).
        train_split, test_split: split names given to the adapter (``test_split: null`` = no test evaluation).
            ``train_split`` may join splits with ``+`` (``"train+val"``: the union, e.g. all 1,036 GAICD v1 train
            images from the ``.mat`` source, whose ``train`` split is 1,000).
        val_split: ``"none"`` (default, as the original code: every train image is trained on and the **last
            epoch** is kept; the test split is only reported), a split name of the adapter (``"val"``: GAICD's
            official 1,000/36 train/val split of the .mat file), or ``"holdout"`` (a seeded ``holdout_fraction`` of
            the train split, names saved in the run dir). Selection on the test split only with ``--select-on-test``.
        loader_kwargs: extra keyword arguments of the adapter (e.g. ``human_boxes`` JSON for HCIC).
        heatmap_dir: HCIC pseudo heat maps ``<stem>.png``; ``null`` = none.
        crops_per_image: crops sampled per training image (GAIC 64; ``null`` = all, e.g. CPC's 24).
        flip: horizontal-flip probability; photometric: ``"ssd"`` (GAIC), ``"colorjitter"`` (HCIC), ``"none"``.
        min_score: crops below it are ignored (GAICD marks unannotated crops −2).
    """

    format: str = "gaicd"
    root: str | None = None
    train_split: str = "train"
    val_split: str = "none"
    holdout_fraction: float = 0.1
    holdout_seed: int = 0
    test_split: str | None = "test"
    loader_kwargs: dict[str, Any] = field(default_factory=dict)
    heatmap_dir: str | None = None
    crops_per_image: int | None = 64
    flip: float = 0.5
    photometric: str = "ssd"
    min_score: float = -1.0


@dataclass
class OptimConfig:
    """``name``: ``adam`` | ``adamw`` | ``sgd``; ``grad_clip``: max global grad norm (``null`` = none)."""

    name: str = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9
    grad_clip: float | None = None


@dataclass
class ScheduleConfig:
    """Per-epoch learning-rate factor (``LambdaLR``).

    * ``constant``: 1.
    * ``warmup_cosine`` (HCIC): ``(e + 1) / warmup_epochs`` for ``e < warmup_epochs``, then
      ``min_lr_ratio + (1 − min_lr_ratio) · ½ (1 + cos(π (e − warmup) / (epochs − warmup)))``.
    * ``multistep``: ``gamma ** (number of milestones ≤ e)``.
    """

    name: str = "constant"
    warmup_epochs: int = 0
    min_lr_ratio: float = 0.0
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1


@dataclass
class TrainConfig:
    """Loop settings. ``accumulate``: micro-batches per optimiser step; ``select_metric``: a key of
    ``gaicd_metrics`` (higher is better); ``max_steps_per_epoch``: cap for smoke runs (``null`` = all);
    ``time_limit_s``: stop after the epoch during which this much training time has elapsed (``null`` = none;
    the schedule still assumes ``epochs``).

    ``module_mode``: the ``train()`` / ``eval()`` mode of the whole network (BatchNorm statistics, dropout) while
    it trains: ``"train"`` (default; HCIC's ``train_on_*.py``), ``"eval"`` (HuiZeng's GAIC ``TrainModel.py``: BN
    frozen to its running statistics, dropout off, the whole run) or ``"eval_after_first_epoch"`` (lld533's GAIC
    ``TrainModel.py``: train mode in epoch 1 only, because its ``test()`` sets ``eval()`` and nothing resets it).
    Parameters are trained in every mode."""

    epochs: int = 80
    batch_size: int = 1
    accumulate: int = 1
    seed: int = 0
    num_workers: int = 0
    amp: bool = True
    select_metric: str = "srcc"
    eval_every: int = 1
    max_steps_per_epoch: int | None = None
    time_limit_s: float | None = None
    deterministic: bool = False
    module_mode: str = "train"


#: ``train.module_mode`` values: the network's mode during training epochs
MODULE_MODES = ("train", "eval", "eval_after_first_epoch")

_SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
    "train": TrainConfig,
}
_CHOICES = {
    ("data", "val_split"): None,  # free (adapter split names) but see _check
    ("data", "photometric"): ("none", "ssd", "colorjitter"),
    ("optim", "name"): ("adam", "adamw", "sgd"),
    ("schedule", "name"): ("constant", "warmup_cosine", "multistep"),
    ("train", "module_mode"): MODULE_MODES,
}


@dataclass
class Recipe:
    """A validated recipe. ``source`` is the file it came from (for messages)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    version: int = RECIPE_VERSION
    source: str = "<memory>"

    def to_dict(self) -> dict[str, Any]:
        d = {"version": self.version}
        for name in _SECTIONS:
            sec = asdict(getattr(self, name))
            d[name] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sec.items()}
        return d

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<memory>") -> Recipe:
        if not isinstance(d, dict):
            raise RecipeError(f"{source}: a recipe must be a mapping, got {type(d).__name__}")
        version = d.get("version", RECIPE_VERSION)
        if version != RECIPE_VERSION:
            raise RecipeError(f"{source}: version: {version!r} is not supported (this opencrop reads {RECIPE_VERSION})")
        extra = sorted(set(d) - set(_SECTIONS) - {"version"})
        for k in extra:
            raise RecipeError(f"{source}: {k}: unknown section{_hint(k, list(_SECTIONS))}")
        sections: dict[str, Any] = {}
        for name, typ in _SECTIONS.items():
            raw = d.get(name) or {}
            if not isinstance(raw, dict):
                raise RecipeError(f"{source}: {name}: expected a mapping, got {type(raw).__name__}")
            valid = [f.name for f in fields(typ)]
            for k in raw:
                if k not in valid:
                    raise RecipeError(f"{source}: {name}.{k}: unknown key{_hint(k, valid)}")
            for (sec, key), choices in _CHOICES.items():
                if sec == name and key in raw and choices is not None and raw[key] not in choices:
                    raise RecipeError(f"{source}: {name}.{key}: {raw[key]!r} is not one of {list(choices)}")
            vals = _coerce(typ, dict(raw), f"{source}: {name}")
            if name == "optim" and "betas" in vals:
                vals["betas"] = tuple(float(b) for b in vals["betas"])
            try:
                sections[name] = typ(**vals)
            except TypeError as e:
                raise RecipeError(f"{source}: {name}: {e}") from e
        r = cls(**sections, version=version, source=source)
        r.check()
        return r

    def check(self) -> None:
        """Cross-field checks; raises :class:`RecipeError`."""
        s, t = self.source, self.train
        if t.epochs < 1 or t.batch_size < 1 or t.accumulate < 1 or t.eval_every < 1:
            raise RecipeError(f"{s}: train: epochs, batch_size, accumulate and eval_every must be ≥ 1")
        if self.optim.lr <= 0:
            raise RecipeError(f"{s}: optim.lr: must be > 0, got {self.optim.lr}")
        if self.schedule.name == "warmup_cosine" and self.schedule.warmup_epochs >= t.epochs:
            raise RecipeError(f"{s}: schedule.warmup_epochs ({self.schedule.warmup_epochs}) must be < train.epochs")
        if not 0.0 <= self.data.flip <= 1.0:
            raise RecipeError(f"{s}: data.flip: a probability in [0, 1], got {self.data.flip}")
        if self.data.val_split == "holdout" and not 0.0 < self.data.holdout_fraction < 1.0:
            raise RecipeError(f"{s}: data.holdout_fraction: must be in (0, 1), got {self.data.holdout_fraction}")
        parts = {p.strip() for p in self.data.train_split.split("+")}
        if "" in parts:
            raise RecipeError(f"{s}: data.train_split: {self.data.train_split!r} has an empty part (e.g. train+val)")
        named_val = None if self.data.val_split in ("none", "holdout") else self.data.val_split
        for key, split in (("val_split", named_val), ("test_split", self.data.test_split)):
            if split is not None and (split in parts or "all" in parts):
                raise RecipeError(f"{s}: data.{key}: {split!r} overlaps data.train_split {self.data.train_split!r}; "
                                  "the model would be selected or tested on images it trains on")


def _coerce(typ: type, vals: dict[str, Any], where: str) -> dict[str, Any]:
    """YAML 1.1 reads ``3e-4`` as a string: convert strings of numeric fields, with a clear error."""
    types = {f.name: str(f.type) for f in fields(typ)}
    for k, v in vals.items():
        t = types.get(k, "")
        if isinstance(v, str) and (t.startswith("float") or t.startswith("int")):
            try:
                vals[k] = float(v) if t.startswith("float") else int(v)
            except ValueError as e:
                raise RecipeError(f"{where}.{k}: {v!r} is not a number") from e
    return vals


def _hint(key: str, valid: list[str]) -> str:
    near = difflib.get_close_matches(key, valid, n=1)
    return f"; did you mean {near[0]!r}?" if near else f"; valid keys: {', '.join(valid)}"


def apply_overrides(d: dict[str, Any], overrides: list[str], source: str = "<cli>") -> dict[str, Any]:
    """Apply ``section.key=value`` (any depth, e.g. ``model.kwargs.backbone=vgg16``) to a recipe dict, in place."""
    for ov in overrides:
        if "=" not in ov:
            raise RecipeError(f"{source}: override {ov!r}: expected section.key=value (e.g. train.epochs=5)")
        path, _, raw = ov.partition("=")
        keys = path.strip().split(".")
        if len(keys) < 2 or not all(keys):
            raise RecipeError(f"{source}: override {ov!r}: expected section.key=value (e.g. train.epochs=5)")
        node = d
        for k in keys[:-1]:
            nxt = node.get(k)
            if nxt is None:
                nxt = node[k] = {}
            if not isinstance(nxt, dict):
                raise RecipeError(f"{source}: override {ov!r}: {k} is not a section")
            node = nxt
        node[keys[-1]] = yaml.safe_load(raw)
    return d


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read and validate a recipe file (``yaml.safe_load``), with optional dotted overrides."""
    p = Path(path)
    try:
        d = yaml.safe_load(p.read_text()) or {}
    except FileNotFoundError as e:
        raise RecipeError(f"{p}: no such recipe file") from e
    except yaml.YAMLError as e:
        raise RecipeError(f"{p}: not valid YAML ({e})") from e
    if overrides:
        apply_overrides(d, overrides, str(p))
    return Recipe.from_dict(d, source=str(p))
