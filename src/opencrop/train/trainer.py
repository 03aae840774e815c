"""The training loop every learned model shares (``opencrop train RECIPE.yaml``).

* Model: ``create_model(recipe.model.name, **recipe.model.kwargs)``, a
  :class:`~opencrop.models.learned.LearnedCropModel`; the loss is its ``compute_loss(batch)["loss"]``.
* Data: :class:`~opencrop.train.datasets.CropDataset` over the adapter's records; the visiting order and every
  augmentation are pure functions of ``(seed, epoch, index)``.
* Selection: by default (``data.val_split: none``) every train image is trained on and ``best.pt`` is the **last
  epoch**, as the original code trains (it then picked on the test set, which opencrop does only with
  ``select_on_test=True``). A **validation** split (GAICD ``val``, or a seeded hold-out of train recorded in
  ``split.json``) selects the best epoch instead. What was used is written to ``split.json``, ``metrics.json``,
  the log on stderr and :attr:`TrainResult.selection`.
* The network's ``train()`` / ``eval()`` mode during training epochs follows ``train.module_mode``
  (:func:`training_mode`): the GAIC codes run BatchNorm/dropout in eval mode.
* Every epoch an atomic checkpoint ``last.pt`` (temporary file + ``os.replace``) with model, optimiser,
  scheduler, AMP scaler, epoch, step, RNG states (python, numpy, torch, cuda) and the best metric, so that
  ``resume=True`` continues bit-exactly; the best model goes to ``best.pt`` (a plain opencrop model file).
* Optional model hooks: ``optimizer_groups(lr)`` (parameter groups, e.g. a backbone learning rate),
  ``on_train_epoch_start(epoch)`` (0-based, before each epoch), ``on_optimizer_step()`` (after each step) and
  ``init_from_data(train_records)`` (once, on a fresh run, with the training records only: never the validation
  hold-out or the test split); SetCrop uses them for its backbone lr, EMA teacher (state in the model's buffers,
  so in ``last.pt``) and k-means anchor priors.
* Logs: ``log.csv``, TensorBoard under ``tb/`` when ``tensorboard`` is importable, a progress line on stderr.
* AMP on CUDA; multi-GPU through ``torchrun`` (DDP, detected from ``LOCAL_RANK``; only rank 0 writes).

Run directory: ``recipe.yaml`` (resolved), ``split.json``, ``log.csv``, ``last.pt``, ``best.pt``,
``metrics.json``, ``tb/``.
"""

from __future__ import annotations

import csv
import importlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from torch import Tensor, nn

from opencrop.data.record import CropRecord
from opencrop.models.checkpoint import load_checkpoint_file, opencrop_version, save_atomic  # save_atomic: re-exported
from opencrop.models.learned import LearnedCropModel
from opencrop.train.datasets import CropDataset, batch_to, collate
from opencrop.train.recipe import MODULE_MODES, OptimConfig, Recipe, RecipeError, ScheduleConfig

__all__ = [
    "TrainResult",
    "build_optimizer",
    "build_scheduler",
    "evaluate",
    "holdout_split",
    "load_records",
    "lr_factor",
    "save_atomic",
    "train",
    "training_mode",
]


# ---------------------------------------------------------------------------------------------- building blocks
def build_optimizer(params: Any, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD from the recipe's ``optim`` section."""
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise RecipeError(f"optim.name: unknown optimiser {cfg.name!r}")


def lr_factor(cfg: ScheduleConfig, epochs: int) -> Callable[[int], float]:
    """The per-epoch learning-rate multiplier of ``cfg`` (see :class:`~opencrop.train.recipe.ScheduleConfig`)."""
    if cfg.name == "constant":
        return lambda e: 1.0
    if cfg.name == "multistep":
        ms = sorted(int(m) for m in cfg.milestones)
        return lambda e: cfg.gamma ** sum(e >= m for m in ms)
    if cfg.name == "warmup_cosine":
        w, lo = int(cfg.warmup_epochs), float(cfg.min_lr_ratio)

        def f(e: int) -> float:
            if e < w:
                return (e + 1) / w
            t = (e - w) / max(1, epochs - w)
            return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * t))

        return f
    raise RecipeError(f"schedule.name: unknown schedule {cfg.name!r}")


def build_scheduler(opt: torch.optim.Optimizer, cfg: ScheduleConfig, epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-epoch ``LambdaLR`` (stepped once at the end of every epoch, as in HCIC)."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg, epochs))


def training_mode(module_mode: str, epoch: int) -> bool:
    """``True`` (``nn.Module.train()``) or ``False`` (``eval()``: BatchNorm uses and keeps its running statistics,
    dropout is off) for 0-based training ``epoch`` under ``train.module_mode`` (see
    :class:`~opencrop.train.recipe.TrainConfig`): ``"train"`` always ``True``, ``"eval"`` always ``False``,
    ``"eval_after_first_epoch"`` ``True`` for epoch 0 only."""
    if module_mode == "train":
        return True
    if module_mode == "eval":
        return False
    if module_mode == "eval_after_first_epoch":
        return epoch == 0
    raise RecipeError(f"train.module_mode: {module_mode!r} is not one of {list(MODULE_MODES)}")


def _rng_state() -> dict[str, Any]:
    npst = np.random.get_state(legacy=False)  # noqa: NPY002  (global state user code may rely on)
    return {
        "python": random.getstate(),
        "numpy": {**npst, "state": {"key": npst["state"]["key"].tolist(), "pos": int(npst["state"]["pos"])}},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(st: dict[str, Any]) -> None:
    py = st["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npst = dict(st["numpy"])
    npst["state"] = {"key": np.asarray(npst["state"]["key"], dtype=np.uint32), "pos": npst["state"]["pos"]}
    np.random.set_state(npst)  # noqa: NPY002
    torch.set_rng_state(st["torch"])
    if st.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def load_records(fmt: str, root: str | Path, split: str, **kwargs: Any) -> list[CropRecord]:
    """Records of one split through the adapter ``opencrop.data.load_<fmt>(root, split=split, **kwargs)``."""
    mod = importlib.import_module("opencrop.data")
    fn = getattr(mod, f"load_{fmt}", None)
    if fn is None:
        have = sorted(n[5:] for n in dir(mod) if n.startswith("load_"))
        raise RecipeError(f"data.format: no adapter opencrop.data.load_{fmt}; available: {have}")
    return list(fn(root, split=split, **kwargs))


def holdout_split(
    records: Sequence[CropRecord], fraction: float, seed: int
) -> tuple[list[CropRecord], list[CropRecord]]:
    """Seeded hold-out: ``ceil(fraction · n)`` records (chosen from the name-sorted list) → validation."""
    recs = sorted(records, key=lambda r: r.name)
    n_val = max(1, math.ceil(fraction * len(recs))) if len(recs) > 1 else 0
    perm = np.random.default_rng(seed).permutation(len(recs))
    val_idx = set(perm[:n_val].tolist())
    return [r for i, r in enumerate(recs) if i not in val_idx], [r for i, r in enumerate(recs) if i in val_idx]


def evaluate(model: LearnedCropModel, dataset: CropDataset | Sequence[CropRecord], device: torch.device | str = "cpu",
             amp: bool = False) -> dict[str, float]:
    """The trainer's validation: :func:`opencrop.eval.runner.evaluate` (the one evaluation path, the same frames,
    cues and record fields as ``opencrop eval``) on the dataset's records → the scalar ``gaicd_metrics``.

    ``device`` / ``amp`` are kept for the call sites; the model runs where it is, in eval mode, under
    ``inference_mode`` (:meth:`~opencrop.models.learned.LearnedCropModel.prepare`)."""
    from opencrop.eval.runner import evaluate as run_eval

    records = dataset.records if isinstance(dataset, CropDataset) else list(dataset)
    # model selection needs a number: an image whose correlation is undefined counts as 0 here (the
    # official default would make the whole mean NaN, and a NaN can never be beaten)
    metrics = run_eval(model, records, undefined_corr="zero").metrics
    return {k: float(v) for k, v in metrics.items() if np.isscalar(v)}


class _LossModule(nn.Module):
    """Makes ``compute_loss`` the forward of a module so that DDP's gradient hooks see it."""

    def __init__(self, model: LearnedCropModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        return self.model.compute_loss(batch)


class _Progress:
    """One self-overwriting stderr line (a line every ~10 % when stderr is not a terminal)."""

    def __init__(self, total: int, prefix: str, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total, self.prefix, self.stream, self.enabled = total, prefix, stream or sys.stderr, enabled
        self.t0 = time.monotonic()
        self.last = 0.0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.next_pct = 0.1

    def update(self, i: int, loss: float, lr: float) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        done = i / max(1, self.total)
        if self.tty and now - self.last < 0.5 and i < self.total:
            return
        if not self.tty and done < self.next_pct and i < self.total:
            return
        self.last = now
        self.next_pct = math.floor(done * 10 + 1) / 10
        eta = (now - self.t0) / max(i, 1) * (self.total - i)
        msg = f"{self.prefix} {i}/{self.total} loss {loss:.4f} lr {lr:.2e} eta {_hms(eta)}"
        self.stream.write(("\r" + msg) if self.tty else (msg + "\n"))
        if self.tty and i >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def _hms(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class _Logger:
    """``log.csv`` (one row per epoch) and TensorBoard scalars when available; rank 0 only."""

    def __init__(self, run_dir: Path, enabled: bool, resume: bool) -> None:
        self.enabled = enabled
        self.path = run_dir / "log.csv"
        self.fields: list[str] | None = None
        self.tb = None
        self.note = ""
        if not enabled:
            return
        if resume and self.path.exists():
            with open(self.path) as fh:
                head = fh.readline().strip()
            self.fields = head.split(",") if head else None
        elif self.path.exists():
            self.path.unlink()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"))
        except Exception:  # tensorboard not installed
            self.note = "tensorboard is not installed: logging to log.csv only (pip install tensorboard)"

    def log(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self.fields is None:
            self.fields = list(row)
            with open(self.path, "w", newline="") as fh:
                csv.writer(fh).writerow(self.fields)
        extra = [k for k in row if k not in self.fields]
        if extra:  # new metric columns: rewrite with a wider header
            old = list(csv.DictReader(open(self.path))) if self.path.exists() else []
            self.fields += extra
            with open(self.path, "w", newline="") as fh:
                w = csv.DictWriter(fh, self.fields)
                w.writeheader()
                w.writerows(old)
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, self.fields).writerow(row)
        if self.tb is not None:
            step = int(row.get("epoch", 0))
            for k, v in row.items():
                if k != "epoch" and isinstance(v, (int, float)) and math.isfinite(float(v)):
                    self.tb.add_scalar(k.replace("val_", "val/").replace("train_", "train/"), float(v), step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    run_dir: Path
    epochs_run: int
    best_epoch: int | None
    best_value: float | None
    select_metric: str
    history: list[dict[str, Any]] = field(default_factory=list)
    test_metrics: dict[str, float] | None = None
    selection: str = ""  # how best.pt was chosen, e.g. "last epoch (no validation split …)"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"


# ---------------------------------------------------------------------------------------------- the loop
def _dist_info() -> tuple[int, int, int]:
    if "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return int(os.environ.get("RANK", "0")), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    return 0, 1, 0


def _epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int, world: int,
                   max_steps: int | None) -> list[list[int]]:
    """Shuffled batches of dataset indices for one epoch and one rank (equal counts on every rank)."""
    perm = np.random.default_rng([seed, 7919, epoch]).permutation(n).tolist()
    if world > 1:
        per = math.ceil(n / world)
        perm = (perm * (1 + per * world // max(n, 1)))[: per * world][rank::world]
    batches = [perm[i : i + batch_size] for i in range(0, len(perm), batch_size)]
    return batches[:max_steps] if max_steps else batches


def train(
    recipe: Recipe,
    out_dir: str | Path,
    data_root: str | Path | None = None,
    resume: bool = False,
    device: str | None = None,
    select_on_test: bool = False,
    records: dict[str, list[CropRecord]] | None = None,
    progress: bool = True,
    stream: TextIO | None = None,
) -> TrainResult:
    """Train ``recipe`` into ``out_dir``.

    Args:
        recipe: the validated recipe.
        out_dir: run directory (created). An existing run is continued only with ``resume=True``.
        data_root: dataset directory (overrides ``recipe.data.root``).
        resume: continue from ``out_dir/last.pt`` (bit-exact: same weights as an uninterrupted run).
        device: ``"cpu"`` | ``"cuda"`` | ``"cuda:N"``; default CUDA when available.
        select_on_test: select the best epoch on the test split (the original code's optimistic protocol).
        records: records per split (``{"train": [...], "val": [...], "test": [...]}``) instead of the adapter.
        progress: show the progress line on stderr.
    """
    from opencrop.models import create_model

    out = Path(out_dir)
    stream = stream or sys.stderr
    rank, world, local_rank = _dist_info()
    is_main = rank == 0
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    from opencrop.nn.device import resolve_device

    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    t, dcfg = recipe.train, recipe.data
    use_amp = bool(t.amp and dev.type == "cuda")

    last = out / "last.pt"
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        if last.exists() and not resume:
            raise RecipeError(
                f"{out}: already holds a run (last.pt); pass --resume to continue it or choose another --out"
            )
    if resume and not last.exists():
        raise RecipeError(f"{out}: --resume given but there is no last.pt to resume from")

    # ---- data
    recs = dict(records or {})
    root = data_root if data_root is not None else dcfg.root

    def split_records(name: str | None) -> list[CropRecord] | None:
        if name is None:
            return None
        if "+" in name:  # union of splits, e.g. train+val
            return [r for part in name.split("+") for r in split_records(part.strip()) or []]
        if name in recs:
            return recs[name]
        if root is None:
            raise RecipeError(f"{recipe.source}: data.root is not set; pass --data DIR")
        return load_records(dcfg.format, root, name, **dcfg.loader_kwargs)

    train_recs = split_records(dcfg.train_split) or []
    test_recs = split_records(dcfg.test_split) if dcfg.test_split else None
    if select_on_test:
        if not test_recs:
            raise RecipeError(f"{recipe.source}: --select-on-test needs a test split (data.test_split)")
        val_recs, selection = test_recs, "test (optimistic: the original code's protocol)"
    elif dcfg.val_split == "holdout":
        train_recs, val_recs = holdout_split(train_recs, dcfg.holdout_fraction, dcfg.holdout_seed)
        selection = f"holdout ({dcfg.holdout_fraction:g} of train, seed {dcfg.holdout_seed})"
    elif dcfg.val_split == "none":
        val_recs = []
        selection = ("last epoch (no validation split, data.val_split: none; set data.val_split to holdout or a "
                     "split name to select on validation, or pass --select-on-test for the original test-set protocol)")
    else:
        val_recs = split_records(dcfg.val_split) or []
        if not val_recs:
            raise RecipeError(f"{recipe.source}: data.val_split {dcfg.val_split!r} is empty; use val_split: holdout")
        selection = f"split {dcfg.val_split!r}"
    if not train_recs:
        raise RecipeError(f"{recipe.source}: no training records (data.root={root}, split {dcfg.train_split!r})")

    # ---- model, optimiser
    random.seed(t.seed)
    np.random.seed(t.seed)  # noqa: NPY002  (legacy global RNG, for third-party code)
    torch.manual_seed(t.seed)
    if t.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    model = create_model(recipe.model.name, **recipe.model.kwargs)
    if not isinstance(model, LearnedCropModel):
        raise RecipeError(f"{recipe.source}: model.name {recipe.model.name!r} is not a learned model")
    model.to(dev).train()
    if not resume and callable(getattr(model, "init_from_data", None)):
        # data-dependent initialisation from the training records only (SetCrop's k-means anchors); a resumed run
        # gets its values from last.pt
        model.init_from_data(list(train_recs))
    # a model may ask for parameter groups (SetCrop: backbone at its own lr)
    groups = (model.optimizer_groups(recipe.optim.lr) if hasattr(model, "optimizer_groups")
              else [p for p in model.parameters() if p.requires_grad])
    opt = build_optimizer(groups, recipe.optim)
    sched = build_scheduler(opt, recipe.schedule, t.epochs)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    loss_module: nn.Module = _LossModule(model)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        loss_module = DistributedDataParallel(loss_module, device_ids=[dev.index] if dev.type == "cuda" else None)

    collate_fn, eval_fn = collate, evaluate
    if callable(getattr(model, "training_datasets", None)):
        # a model with its own samples (GenCrop: context windows of outpainted canvases) builds its datasets
        # (with .records, .skipped, .set_epoch, .collate) and validates itself (evaluate_dataset → metrics dict)
        train_ds, val_ds, test_ds = model.training_datasets(
            train_recs, val_recs, test_recs if not select_on_test else None, dcfg, t.seed)
        collate_fn, eval_fn = train_ds.collate, type(model).evaluate_dataset
    else:
        frame_kw = {"analysis_size": model.analysis_size, "needs": model.needs}
        train_ds = CropDataset(train_recs, model.preprocess, dcfg.crops_per_image, dcfg.flip, dcfg.photometric,
                               dcfg.heatmap_dir, t.seed, dcfg.min_score, **frame_kw)
        val_ds = CropDataset(val_recs, model.preprocess, None, 0.0, "none", dcfg.heatmap_dir, t.seed,
                             dcfg.min_score, **frame_kw)
        test_ds = (CropDataset(test_recs, model.preprocess, None, 0.0, "none", dcfg.heatmap_dir, t.seed,
                               dcfg.min_score, **frame_kw) if test_recs and not select_on_test else None)

    start_epoch, step = 0, 0
    best_value: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = []
    if resume:
        ck = load_checkpoint_file(last)  # a damaged last.pt is a ModelFileError naming it
        model.load_state(ck["model"], source=last)
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        if ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        start_epoch, step = int(ck["epoch"]), int(ck["step"])
        best_value, best_epoch = ck["best"]["value"], ck["best"]["epoch"]
        history = list(ck.get("history", []))
        if ck.get("recipe") and ck["recipe"] != recipe.to_dict() and is_main:
            stream.write(f"warning: {out}: the recipe differs from the one this run started with\n")
        _set_rng_state(ck["rng"])

    logger = _Logger(out, is_main, resume)
    if is_main:
        recipe.dump(out / "recipe.yaml")
        (out / "split.json").write_text(json.dumps({
            "selection": selection,
            "train": [r.name for r in train_ds.records],
            "val": [r.name for r in val_ds.records],
            "skipped_without_crops": train_ds.skipped + val_ds.skipped,
        }, indent=1))
        if logger.note:
            stream.write(logger.note + "\n")
        stream.write(f"{recipe.model.name}: {len(train_ds)} train / {len(val_ds)} val images; selection: {selection}; "
                     f"module mode {t.module_mode}; device {dev}{' (AMP)' if use_amp else ''}\n")

    metric = t.select_metric
    t_start = time.monotonic()
    stopped = None
    for epoch in range(start_epoch, t.epochs):
        stop = t.time_limit_s is not None and time.monotonic() - t_start >= t.time_limit_s
        if world > 1:  # every rank must take the same decision
            import torch.distributed as dist

            flag = torch.tensor([float(stop)], device=dev)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item() > 0)
        if stop:
            stopped = f"time limit {t.time_limit_s:g} s reached after epoch {epoch}"
            if is_main:
                stream.write(stopped + "\n")
            break
        train_ds.set_epoch(epoch)
        if hasattr(model, "on_train_epoch_start"):  # model hook (SetCrop starts its EMA teacher at an epoch)
            model.on_train_epoch_start(epoch)
        batches = _epoch_batches(len(train_ds), t.batch_size, t.seed, epoch, rank, world, t.max_steps_per_epoch)
        loader = torch.utils.data.DataLoader(train_ds, batch_sampler=batches, collate_fn=collate_fn,
                                             num_workers=t.num_workers, pin_memory=dev.type == "cuda")
        bar = _Progress(len(batches), f"epoch {epoch + 1}/{t.epochs}", stream, progress and is_main)
        loss_module.train(training_mode(t.module_mode, epoch))  # the model and, under DDP, its wrapper
        opt.zero_grad(set_to_none=True)
        tot, parts_tot, t0 = 0.0, {}, time.monotonic()
        for i, batch in enumerate(loader, 1):
            batch = batch_to(batch, dev)
            with torch.autocast(dev.type, enabled=use_amp):
                losses = loss_module(batch)
            loss = losses["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{recipe.model.name}: non-finite loss at epoch {epoch + 1}, batch {i}")
            scaler.scale(loss / t.accumulate).backward()
            if i % t.accumulate == 0 or i == len(batches):
                if recipe.optim.grad_clip:
                    scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(model.parameters(), recipe.optim.grad_clip)
                scaler.step(opt)
                scaler.update()
                if hasattr(model, "on_optimizer_step"):  # model hook (SetCrop's EMA teacher update)
                    model.on_optimizer_step()
                opt.zero_grad(set_to_none=True)
                step += 1
            tot += float(loss.detach())
            for k, v in losses.items():
                parts_tot[k] = parts_tot.get(k, 0.0) + float(v.detach())
            bar.update(i, tot / i, opt.param_groups[0]["lr"])
        row: dict[str, Any] = {"epoch": epoch + 1, "step": step, "lr": opt.param_groups[0]["lr"],
                               "train_loss": tot / max(1, len(batches)), "epoch_s": round(time.monotonic() - t0, 2)}
        for k, v in parts_tot.items():
            if k != "loss":
                row[f"train_{k}"] = v / max(1, len(batches))
        sched.step()

        improved = False
        if is_main and len(val_ds) and ((epoch + 1) % t.eval_every == 0 or epoch + 1 == t.epochs):
            m = eval_fn(model, val_ds, dev, use_amp)
            row.update({f"val_{k}": v for k, v in m.items()})
            if metric not in m:
                raise RecipeError(f"{recipe.source}: train.select_metric {metric!r} not among {sorted(m)}")
            if math.isfinite(m[metric]) and (best_value is None or m[metric] > best_value):
                best_value, best_epoch, improved = m[metric], epoch + 1, True
        elif is_main and not len(val_ds):
            best_epoch, improved = epoch + 1, True
        history.append(row)
        if is_main:
            if improved:
                model.save_weights(out / "best.pt", source=f"opencrop train {recipe.source} epoch {epoch + 1}")
            save_atomic({
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "config": {"name": model.name, **model.config},
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict() if use_amp else {},
                "epoch": epoch + 1,
                "step": step,
                "rng": _rng_state(),
                "best": {"metric": metric, "value": best_value, "epoch": best_epoch},
                "history": history,
                "recipe": recipe.to_dict(),
                "opencrop_version": opencrop_version(),
                "source": f"opencrop train {recipe.source}",
            }, last)
            logger.log(row)
            shown = [f"val_{k}" for k in ("srcc", "pcc", "acc5", "acc10", metric) if f"val_{k}" in row]
            shown = shown or [k for k in row if k.startswith("val_")]
            vs = " ".join(f"{k[4:]} {row[k]:.4f}" for k in dict.fromkeys(shown))
            stream.write(f"epoch {epoch + 1}/{t.epochs} loss {row['train_loss']:.4f} {vs}"
                         f"{' *' if improved and vs else ''}\n")
        if world > 1:
            import torch.distributed as dist

            dist.barrier()

    test_metrics = None
    if is_main and test_ds is not None and len(test_ds) and (out / "best.pt").exists():
        kw = {k: v for k, v in recipe.model.kwargs.items() if k != "weights"}
        for k in ("pretrained_backbone", "pretrained"):
            if k in kw:
                kw[k] = False  # best.pt holds every weight
        best_model = create_model(recipe.model.name, **kw)
        best_model.load_weights(out / "best.pt")
        test_metrics = eval_fn(best_model.to(dev), test_ds, dev, use_amp)
    if is_main:
        (out / "metrics.json").write_text(json.dumps({
            "selection": selection, "select_metric": metric, "best_epoch": best_epoch, "best_value": best_value,
            "module_mode": t.module_mode, "stopped": stopped, "test": test_metrics, "history": history,
        }, indent=1))
        if best_epoch is not None:
            stream.write(f"{out / 'best.pt'}: epoch {best_epoch}; selection: {selection}\n")
    logger.close()
    return TrainResult(out, len(history), best_epoch, best_value, metric, history, test_metrics, selection)
