"""S2CNet: Spatial-Semantic Collaborative Cropping for User Generated Content (Su et al., AAAI 2024, arXiv
2401.08086). Registered as ``s2cnet``.

Specification: ``docs/systems.md`` §5 (architecture §5.1, candidates §5.2, training §5.3, evaluation §5.4). The
authors released test code only (suyukun666/S2CNet ``model/ssc.py``, ``model/attention.py``); this is a
re-implementation from the specification and a reading of that code, not a copy.

Architecture (one image, ``K`` candidate crops, ``D`` object boxes, ``n = 1 + D`` graph nodes per crop):

* Backbone and fusion as GAIC (MobileNetV2 taps f3 / f4 / f5, :class:`~opencrop.nn.GAICFusion` → ``reddim`` = 8
  channels at stride 16).
* **Node features.** For the crop and for every object box: RoIAlignAvg(A×A) ⊕ RoDAlignAvg(A×A) of the box,
  flattened in the original's order (channel, RoI/RoD, row, column) → ``2·reddim·A²`` → Linear → ``node_dim``
  (256) → LayerNorm → ReLU. The crop node comes first; the object nodes of an image are shared by its crops (their
  features are computed once per image, not once per crop).
* **Adaptive attention graph** (:class:`GraphRelations`). Box centres, normalised by the input width / height,
  are embedded by two Linear(2 → 256) maps θ, φ; the spatial relation is ``‖θ(c_i) − φ(c_j)‖ / √256`` and a
  Linear(1 → heads) turns it into a per-head bias ``A[h, i, j]``. The semantic relation is
  ``θ'(x_i) · φ'(x_j) / √256`` for Linear(256 → 256) maps θ', φ' of the node features, → Linear(1 → heads) ⇒ ``S``.
* **Graph transformer** (:class:`GraphTransformer`), depth 2, 4 heads, width 256, MLP 1024 (GELU), pre-norm
  residual blocks. At every layer the aggregated message ``x_ma = ReLU(LN(W · (G x)))`` with
  ``G = softmax_j(mean_h A ⊙ mean_h S)`` gives the queries; keys / values come from ``LN(x)``; the logits are
  ``q·k / √256 + A + S``. ``A`` and ``S`` are computed once, from the initial node features.
* **Heads.** ``head="crop"`` (GAICD v1: ``only_crop: True``): the crop token → Linear(256 → 1). ``head="all"``
  (GAICD v2): the ``1 + D`` tokens as ``(1 + D) × 16 × 16`` channels → GAIC's FC head
  (:func:`~opencrop.models.gaic.gaic_head`: 16×16 conv → 768, BN, ReLU → 128, BN, ReLU → dropout 0.5 → 1).

Published configurations (``configs/s2cnet_gaicd_v{1,2}.yaml``): v1 ``bbox_num=10, align_size=9, head="crop"``;
v2 ``bbox_num=5, align_size=15, head="all"``.

**Variable numbers of objects.** Object boxes arrive padded: ``object_boxes`` ``Tensor[B, D', 4]`` xyxy input
pixels and ``object_mask`` ``Tensor[B, D']`` bool (True = real box). Real boxes are moved to the front (order kept)
and the list is cut or padded to ``bbox_num``. Padded nodes are excluded from every softmax (attention logits and
the aggregation ``G``) and their tokens are zeroed, so they have no influence on real nodes or on the all-token
head (a zero channel contributes nothing to its first conv); an image without objects is a one-node graph. Nodes
padded in every image of a batch are dropped before the graph (the v2 head then uses the matching slice of its
first conv's weights), which gives the same scores faster.

Object boxes: S2CNet's published Visual Genome proposals for GAICD images (``opencrop.data.s2cnet``, attached to
the records as ``object_boxes``); for any other photo :func:`object_boxes_from_cues` (people and COCO objects of
:mod:`opencrop.cues`, at most ``bbox_num`` boxes, documented there).

Loss (the training code was never published, §5.3): SmoothL1 on ``(MOS − 2.95) / 0.8`` as GAIC, plus
``rank_weight`` × the pairwise ranking loss of :func:`opencrop.nn.losses.rank_loss` on the same targets
(``docs/s2cnet.md`` says which weight the recipes use and why).

Differences from the released code: pure-PyTorch align ops; the pairwise distance is clamped at 0 before the
square root (the original can take the root of a small negative number: NaN); padded / missing objects are
masked (the original assumes exactly ``bbox_num`` boxes); the flip augmentation swaps x1 / x2 (the original
inherits GAIC's bug); ``node_dim ** -0.5`` scaling of the attention logits is kept as coded (not per head).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from opencrop.cues.types import Cues
from opencrop.models.checkpoint import build_with_weights
from opencrop.models.gaic import _feature_info, gaic_head
from opencrop.models.inputs import object_boxes_from_cues, require_object_cues
from opencrop.models.learned import LearnedCropModel
from opencrop.models.preprocess import Preprocess
from opencrop.models.registry import register_model
from opencrop.nn.losses import GAIC_MOS_MEAN, GAIC_MOS_STD, mos_smooth_l1, normalize_mos, rank_loss

__all__ = [
    "PUBLISHED_CONFIGS",
    "GraphRelations",
    "GraphTransformer",
    "S2CNet",
    "fit_object_boxes",
    "object_boxes_from_cues",
    "s2cnet",
]

#: the two published configurations (suyukun666/S2CNet ``config/GAICv{1,2}.yaml``)
PUBLISHED_CONFIGS: dict[str, dict[str, Any]] = {
    "gaicd_v1": {"bbox_num": 10, "align_size": 9, "head": "crop"},
    "gaicd_v2": {"bbox_num": 5, "align_size": 15, "head": "all"},
}
_HEADS = ("crop", "all")
_NN_NAME = {"mobilenet_v2": "mobilenet_v2", "shufflenet_v2": "shufflenet_v2_x1_0", "vgg16": "vgg16"}


# ---------------------------------------------------------------------------------------------- object boxes
def fit_object_boxes(boxes: Tensor, mask: Tensor, count: int) -> tuple[Tensor, Tensor]:
    """Real boxes first (order kept), cut or padded to ``count`` columns.

    Args:
        boxes (Tensor[B, D', 4]): xyxy input pixels, padding rows arbitrary.
        mask (Tensor[B, D'] bool): True for real boxes.
        count: ``D``, the model's ``bbox_num``.

    Returns:
        ``(Tensor[B, D, 4], Tensor[B, D] bool)``; padding rows are 0 with mask False.
    """
    b, d = mask.shape
    mask = mask.to(torch.bool)
    exporting = torch.compiler.is_exporting()  # the ONNX graph always sorts (the test below is data-dependent)
    if d and (exporting or not bool(mask[:, :-1].ge(mask[:, 1:]).all())):  # not real-first: stable sort, real first
        # unique keys (padding after the real boxes, then position): top-k of them is the stable order (and exports)
        key = (~mask).to(torch.int64) * d + torch.arange(d, device=mask.device)
        order = torch.topk(key, d, dim=1, largest=False).indices
        boxes = boxes.gather(1, order[..., None].expand(b, d, 4))
        mask = mask.gather(1, order)
    if d >= count:
        boxes, mask = boxes[:, :count], mask[:, :count]
    else:
        boxes = torch.cat([boxes, boxes.new_zeros(b, count - d, 4)], dim=1)
        mask = torch.cat([mask, mask.new_zeros(b, count - d)], dim=1)
    return boxes * mask[..., None].to(boxes.dtype), mask


# ---------------------------------------------------------------------------------------------- graph
def pairwise_distance(x: Tensor, y: Tensor) -> Tensor:
    """Euclidean distances ``Tensor[..., N, M]`` between the rows of ``x`` ``[..., N, R]`` and ``y`` ``[..., M, R]``
    (``‖x‖² − 2 x·y + ‖y‖²``, clamped at 0 before the root: rounding can make it slightly negative)."""
    d2 = x.pow(2).sum(-1, keepdim=True) - 2.0 * (x @ y.transpose(-1, -2)) + y.pow(2).sum(-1).unsqueeze(-2)
    return d2.clamp_min(0.0).add(1e-12).sqrt()


class GraphRelations(nn.Module):
    """S2CNet's spatial and semantic relations between the nodes of each graph (per-head attention biases).

    Args:
        node_dim: width E of the node features (256).
        rel_dim: width R of the relation embeddings (256).
        heads: number of attention heads h (4).

    Parameter names follow the original ``GraphConstruction`` (``fc_rn_theta``, ``fc_rn_phi``,
    ``pos_ascension_theta``, ``pos_ascension_phi``, ``pos_to_head``, ``app_to_head``).
    """

    def __init__(self, node_dim: int = 256, rel_dim: int = 256, heads: int = 4) -> None:
        super().__init__()
        self.rel_dim, self.heads = int(rel_dim), int(heads)
        self.fc_rn_theta = nn.Linear(node_dim, rel_dim)
        self.fc_rn_phi = nn.Linear(node_dim, rel_dim)
        self.pos_ascension_theta = nn.Linear(2, rel_dim)
        self.pos_ascension_phi = nn.Linear(2, rel_dim)
        self.pos_to_head = nn.Linear(1, heads)
        self.app_to_head = nn.Linear(1, heads)

    def spatial(self, theta: Tensor, phi: Tensor) -> Tensor:
        """Spatial bias ``A`` ``Tensor[K, h, n, n]`` from the embedded centres ``θ(c)``, ``φ(c)`` ``[K, n, R]``:
        ``A[k, :, i, j] = pos_to_head(‖θ_i − φ_j‖ / √R)``."""
        d = pairwise_distance(theta, phi) / math.sqrt(self.rel_dim)
        return self.pos_to_head(d.unsqueeze(-1)).permute(0, 3, 1, 2)

    def semantic(self, theta: Tensor, phi: Tensor) -> Tensor:
        """Semantic bias ``S`` ``Tensor[K, h, n, n]`` from the embedded node features ``θ'(x)``, ``φ'(x)``
        ``[K, n, R]``: ``S[k, :, i, j] = app_to_head(θ'_i · φ'_j / √R)``."""
        sim = (theta @ phi.transpose(-1, -2)) / math.sqrt(self.rel_dim)
        return self.app_to_head(sim.unsqueeze(-1)).permute(0, 3, 1, 2)

    def forward(self, nodes: Tensor, centres: Tensor) -> tuple[Tensor, Tensor]:
        """``nodes`` ``Tensor[K, n, E]``, ``centres`` ``Tensor[K, n, 2]`` (box centres ``(cx / W, cy / H)``,
        normalised by the input size) → ``(A, S)``, each ``Tensor[K, h, n, n]``."""
        a = self.spatial(self.pos_ascension_theta(centres), self.pos_ascension_phi(centres))
        s = self.semantic(self.fc_rn_theta(nodes), self.fc_rn_phi(nodes))
        return a, s

    def forward_shared(self, crop: Tensor, objects: Tensor, crop_c: Tensor, obj_c: Tensor,
                       index: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`forward` of the graphs ``[crop_k, objects[index_k]]`` without building them: the object-object
        terms (embeddings, distances, dot products) are computed once per image, only the crop rows and columns
        per crop. The same function, reassociated.

        Args:
            crop (Tensor[K, E]), crop_c (Tensor[K, 2]): each crop's node feature and normalised centre.
            objects (Tensor[B, D, E]), obj_c (Tensor[B, D, 2]): each image's object nodes and centres.
            index (Tensor[K]): each crop's image.

        Returns:
            ``(A, S)``, each ``Tensor[K, h, 1 + D, 1 + D]`` (node 0 = the crop).
        """
        th_c, ph_c = self.pos_ascension_theta(crop_c), self.pos_ascension_phi(crop_c)
        th_o, ph_o = self.pos_ascension_theta(obj_c), self.pos_ascension_phi(obj_c)
        norms = _node_blocks(th_c.pow(2).sum(-1), th_o.pow(2).sum(-1), index)  # [K, n]: ‖θ_i‖²
        norms_phi = _node_blocks(ph_c.pow(2).sum(-1), ph_o.pow(2).sum(-1), index)
        d2 = norms[:, :, None] - 2.0 * _dot_blocks(th_c, ph_c, th_o, ph_o, index) + norms_phi[:, None, :]
        d = d2.clamp_min(0.0).add(1e-12).sqrt() / math.sqrt(self.rel_dim)  # as pairwise_distance
        sim = _dot_blocks(self.fc_rn_theta(crop), self.fc_rn_phi(crop), self.fc_rn_theta(objects),
                          self.fc_rn_phi(objects), index) / math.sqrt(self.rel_dim)
        a = self.pos_to_head(d.unsqueeze(-1)).permute(0, 3, 1, 2)
        return a, self.app_to_head(sim.unsqueeze(-1)).permute(0, 3, 1, 2)


def _node_blocks(crop: Tensor, objects: Tensor, index: Tensor) -> Tensor:
    """Per-node values ``[K, 1 + D]`` from the crops' ``[K]`` and the images' objects' ``[B, D]``."""
    return torch.cat([crop[:, None], _per_crop(objects, index)], dim=1)


def _dot_blocks(p_c: Tensor, q_c: Tensor, p_o: Tensor, q_o: Tensor, index: Tensor) -> Tensor:
    """Dot products ``p_i · q_j`` ``[K, 1 + D, 1 + D]`` over the nodes ``[crop_k, objects[index_k]]``, from the
    crops' rows ``p_c``, ``q_c`` ``[K, R]`` and the images' object rows ``p_o``, ``q_o`` ``[B, D, R]``: the
    object-object block once per image, the crop row and column per crop."""
    k, (b, d, r) = p_c.shape[0], p_o.shape
    if b == 1 and not torch.compiler.is_exporting():
        row, col = p_c @ q_o[0].t(), q_c @ p_o[0].t()  # [K, D]: p_crop · q_obj, p_obj · q_crop
    else:  # every image's objects, then each crop's own image (B small: the waste is K·B·D·R)
        pick = torch.arange(k, device=index.device)
        row = (p_c @ q_o.reshape(b * d, r).t()).view(k, b, d)[pick, index]
        col = (q_c @ p_o.reshape(b * d, r).t()).view(k, b, d)[pick, index]
    top = torch.cat([(p_c * q_c).sum(-1)[:, None], row], dim=1)[:, None]  # [K, 1, 1 + D]
    rest = torch.cat([col[:, :, None], _per_crop(p_o @ q_o.transpose(1, 2), index)], dim=2)  # [K, D, 1 + D]
    return torch.cat([top, rest], dim=1)


def _softmax(x: Tensor) -> Tensor:
    """``x.softmax(-1)`` written out (``exp(x − max) / Σ``): the same function, about twice as fast as the fused kernel
    on the short rows here (``n ≤ 1 + bbox_num`` keys). Each row needs one finite entry (the crop node is real)."""
    e = (x - x.amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


#: oneDNN's fused linear (``torch.ops.mkldnn``, private): None = not probed yet (:func:`_onednn`)
_ONEDNN: bool | None = None
#: oneDNN-packed weights for inference, per owning module and slot: ``(alias of the source weight, its version
#: at packing, packed)``; the alias keeps the source's storage alive, so an equal data pointer is the same memory
_PACKED: weakref.WeakKeyDictionary[nn.Module, dict[str, tuple[Tensor, int, Tensor]]] = weakref.WeakKeyDictionary()
#: per-thread: whether the large products run in bfloat16 (:meth:`S2CNet.precision_context`, ``precision="bf16"``)
_LOW = threading.local()


def _low() -> bool:
    """Whether this thread is inside a bf16 score call (:meth:`S2CNet.precision_context`)."""
    return getattr(_LOW, "on", False)


def _onednn() -> bool:
    """Whether ``torch.ops.mkldnn._linear_pointwise`` / ``_reorder_linear_weight`` exist and work (probed once on a
    tiny product against ``F.linear``; a torch build without them, or where they fail, uses the plain ops)."""
    global _ONEDNN
    if _ONEDNN is None:
        try:
            with torch.no_grad():
                x, w, b = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5)
                y = torch.ops.mkldnn._linear_pointwise(x, torch.ops.mkldnn._reorder_linear_weight(w, 3), b,
                                                       "gelu", [], "none")
                _ONEDNN = bool(torch.backends.mkldnn.is_available()) and bool(
                    torch.allclose(y, F.gelu(F.linear(x, w, b)), atol=1e-5, rtol=1e-5))
        except (AttributeError, RuntimeError, NotImplementedError):
            _ONEDNN = False
    return _ONEDNN


def _packed(owner: nn.Module, slot: str, src: Tensor, make: Any, x: Tensor) -> Tensor | None:
    """``make(src)`` (a ``[out, in]`` weight) packed for oneDNN's linear, cached while ``src`` is unchanged (same
    storage, same version counter, as :meth:`S2CNet._node_weights`), or None where the plain ops must run: autograd
    on, an export trace, not float32 on the CPU, oneDNN unavailable. Inside a bf16 score call (:func:`_low`) the
    weight is packed as bfloat16 (:func:`_onednn_linear` then casts the input). Weights made in inference mode keep
    no version counter: they are used unpacked (not cached)."""
    low = _low()
    if (torch.is_grad_enabled() or torch.compiler.is_exporting()
            or x.dtype not in ((torch.float32, torch.bfloat16) if low else (torch.float32,))
            or x.device.type != "cpu" or src.dtype != torch.float32 or src.device.type != "cpu" or not _onednn()):
        return None
    dtype = torch.bfloat16 if low else torch.float32
    if src.is_inference():
        return make(src).to(dtype).contiguous()
    slot = f"{slot}:bf16" if low else slot
    slots = _PACKED.get(owner)
    hit = None if slots is None else slots.get(slot)
    if hit is not None and hit[0].data_ptr() == src.data_ptr() and hit[0].shape == src.shape \
            and hit[1] == src._version:
        return hit[2]
    packed = torch.ops.mkldnn._reorder_linear_weight(make(src).detach().to(dtype).contiguous(),
                                                     x.numel() // x.shape[-1])
    _PACKED.setdefault(owner, {})[slot] = (src.detach(), src._version, packed)
    return packed


def _same(w: Tensor) -> Tensor:
    return w


def _onednn_linear(x: Tensor, w: Tensor, bias: Tensor | None, attr: str = "none", algo: str = "",
                   keep: bool = False) -> Tensor:
    """oneDNN's linear of ``x`` ``[rows, in]`` with the packed weight ``w`` (:func:`_packed`). A bfloat16 weight
    (bf16 score call) multiplies ``x`` cast to bfloat16 (float32 accumulation, float32 bias) and gives float32 rows,
    or bfloat16 ones with ``keep`` (the feed-forward's hidden rows, which only feed its second product)."""
    if w.dtype != torch.bfloat16:
        return torch.ops.mkldnn._linear_pointwise(x, w, bias, attr, [], algo)
    y = torch.ops.mkldnn._linear_pointwise(x.to(torch.bfloat16), w, bias, attr, [], algo)
    return y if keep else y.float()


def _linear(lin: nn.Linear, x: Tensor, residual: Tensor | None = None) -> Tensor:
    """``lin(x)`` [``+ residual``]; at float32 CPU inference through oneDNN's linear with the packed weight (the
    same function up to float32 rounding; ≈ 10 % faster than the MKL product on these shapes, and the residual add
    is fused), else the plain ops."""
    w = _packed(lin, "weight", lin.weight, _same, x)
    if w is None:
        y = lin(x)
        return y if residual is None else residual + y
    x2, out = x.reshape(-1, x.shape[-1]), lin.out_features
    if residual is None or w.dtype == torch.bfloat16:  # bf16: the residual add in float32, after the product
        y = _onednn_linear(x2, w, lin.bias)
        y = y if residual is None else residual.reshape(-1, out) + y
    else:
        y = torch.ops.mkldnn._linear_pointwise.binary(x2, residual.reshape(-1, out).contiguous(), w, lin.bias, "add")
    return y.view(*x.shape[:-1], out)


#: per-thread scratch for the feed-forward's hidden activations at inference without oneDNN (:func:`_feed_forward`)
_SCRATCH = threading.local()


def _feed_forward(ff: nn.Sequential, x: Tensor, residual: Tensor | None = None) -> Tensor:
    """``residual + ff(x)`` (``ff(x)`` without ``residual``) for ``ff = Linear → GELU → Linear``.

    Without autograd: at float32 on the CPU both products run through oneDNN's linear with packed weights, the
    exact (erf) GELU fused into the first and the residual add into the second (:func:`_linear`); otherwise the
    hidden ``[rows, mlp_dim]`` activations go into a reused per-thread buffer with GELU in place (bitwise the same
    result as ``ff``: a fresh 3.9 MB tensor for 157 crops × 6 nodes was page-faulted in on every call, ≈ 1–3 ms per
    layer)."""
    lin1, act, lin2 = ff[0], ff[1], ff[2]
    if torch.is_grad_enabled() or torch.compiler.is_exporting() or not isinstance(act, nn.GELU):
        y = ff(x)
        return y if residual is None else residual + y
    w1 = _packed(lin1, "weight", lin1.weight, _same, x) if act.approximate == "none" else None
    if w1 is not None:
        h = _onednn_linear(x.reshape(-1, x.shape[-1]), w1, lin1.bias, "gelu", "none", keep=True)
        return _linear(lin2, h.view(*x.shape[:-1], -1), residual)
    rows, width = x.numel() // x.shape[-1], lin1.out_features
    key = (x.dtype, x.device, torch.is_inference_mode_enabled())  # inference tensors cannot be written outside it
    buf = getattr(_SCRATCH, "buffers", {}).get(key)
    if buf is None or buf.numel() < rows * width:
        buf = torch.empty(rows * width, dtype=x.dtype, device=x.device)
        _SCRATCH.buffers = {**getattr(_SCRATCH, "buffers", {}), key: buf}
    hidden = buf[: rows * width].view(rows, width)
    torch.addmm(lin1.bias, x.reshape(rows, -1), lin1.weight.t(), out=hidden)
    torch.ops.aten.gelu_(hidden, approximate=act.approximate)
    y = torch.addmm(lin2.bias, hidden, lin2.weight.t()).view(*x.shape[:-1], lin2.out_features)
    return y if residual is None else residual + y


class _Attention(nn.Module):
    """Multi-head attention with queries from the aggregated messages and additive per-head biases."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"s2cnet: node_dim {dim} must be divisible by heads {heads}")
        self.heads = heads
        self.scale = dim ** -0.5  # as coded: the full width, not the head width
        self.to_kv = nn.Linear(dim, 2 * dim, bias=False)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, kv: Tensor, queries: Tensor, bias: Tensor, residual: Tensor | None = None) -> Tensor:
        """``kv`` ``[K, n, 2E]`` (``to_kv`` of the normalised nodes), ``queries`` ``[K, m, E]``, ``bias``
        ``[K, h, m, n]`` (−inf at padded keys) → ``[K, m, E]`` (plus ``residual`` ``[K, m, E]`` if given)."""
        e, w = queries.shape[2], queries.shape[2] // self.heads
        q, bias = _linear(self.to_q, queries), bias.to(queries.dtype)
        # written out, not F.scaled_dot_product_attention: the ONNX exporter's SDPA decomposition breaks the head
        # reshapes, and one formula for torch and the exported graph keeps their scores within float rounding. One
        # head at a time: its column slices of q / k / v are strided [K, rows, E/h] matrices that bmm reads in
        # place, where [K·h, rows, E/h] batches would first copy q, k and v (≈ 40 % of this function's time)
        heads = []
        for i in range(self.heads):
            cols = slice(i * w, (i + 1) * w)
            logits = torch.baddbmm(bias[:, i], q[:, :, cols], kv[:, :, cols].transpose(1, 2), alpha=self.scale)
            heads.append(torch.bmm(_softmax(logits), kv[:, :, e + i * w: e + (i + 1) * w]))
        return _linear(self.to_out, torch.cat(heads, dim=-1), residual)

    def shared_keys(self, kv_crop: Tensor, kv_obj: Tensor, queries: Tensor, bias: Tensor, index: Tensor) -> Tensor:
        """The same as ``forward(cat(kv_crop[:, None], kv_obj[index]), queries, bias)``, reassociated for keys /
        values whose object rows are shared by all crops of an image (the first layer): ``q·k = m·(W_qᵀ k)`` and
        ``W_o Σ_j α_j v_j = Σ_j α_j (W_o v_j)``, with ``W_qᵀ k`` and ``W_o v`` of the object rows once per image and
        of the crop row once per crop. ``to_q`` and ``to_out`` then never run on the ``K·m`` query rows (two
        ``E × E`` products per row replaced by ``h·(1 + D)``-wide ones).

        Args:
            kv_crop (Tensor[K, 2E]), kv_obj (Tensor[B, D, 2E]): ``to_kv`` of the normalised crop and object nodes.
            queries (Tensor[K, m, E]): the aggregated messages (before ``to_q``).
            bias (Tensor[K, h, m, 1 + D]): per-head biases (−inf at padded keys).
            index (Tensor[K]): each crop's image.

        Returns:
            ``Tensor[K, m, E]``.
        """
        k_, m, e = queries.shape
        b, d, h = kv_obj.shape[0], kv_obj.shape[1], self.heads
        w = e // h
        w_q = self.to_q.weight.view(h, w, e)  # q_h = W_q[h] x
        w_o = self.to_out.weight.view(e, h, w)  # to_out(o) = Σ_h W_o[:, h] o_h + b
        kt_c = torch.einsum("khw,hwe->khe", kv_crop[:, :e].view(k_, h, w), w_q)  # [K, h, E]: W_qᵀ k per head
        vo_c = torch.einsum("khw,ehw->khe", kv_crop[:, e:].view(k_, h, w), w_o)  # [K, h, E]: W_o v per head
        kt_o = torch.einsum("bdhw,hwe->bhde", kv_obj[..., :e].view(b, d, h, w), w_q).reshape(b, h * d, e)
        vo_o = torch.einsum("bdhw,ehw->bhde", kv_obj[..., e:].view(b, d, h, w), w_o).reshape(b, h * d, e)
        one = b == 1 and not torch.compiler.is_exporting()
        lc = torch.bmm(queries, kt_c.transpose(1, 2))  # [K, m, h]: the crop key
        lo = queries @ kt_o[0].t() if one else torch.bmm(queries, _per_crop(kt_o, index).transpose(1, 2))
        logits = torch.cat([lc[..., None], lo.view(k_, m, h, d)], dim=-1)  # [K, m, h, 1 + D]
        alpha = _softmax(torch.add(bias.to(queries.dtype).transpose(1, 2), logits, alpha=self.scale))
        ao = alpha[..., 1:].reshape(k_, m, h * d)
        out = torch.bmm(alpha[..., 0].contiguous(), vo_c)  # [K, m, E] (bmm on the strided column: 4× slower)
        out = out + (ao @ vo_o[0] if one else torch.bmm(ao, _per_crop(vo_o, index)))
        return out + self.to_out.bias

    def single_query(self, xn: Tensor, queries: Tensor, bias: Tensor) -> Tensor:
        """The same as ``forward(to_kv(xn), queries, bias)`` for one query row (``queries`` ``[K, 1, E]``, ``bias``
        ``[K, h, 1, n]``), reassociated: ``q·(W_k x_j) = (W_kᵀ q)·x_j`` and ``Σ_j α_j W_v x_j = W_v Σ_j α_j x_j``,
        so the nodes are never projected (``O(K·h·E·(n + E/h))`` instead of ``O(K·n·E²)``)."""
        k_, e = xn.shape[0], xn.shape[2]
        h = self.heads
        w_k, w_v = self.to_kv.weight[:e].view(h, e // h, e), self.to_kv.weight[e:].view(h, e // h, e)
        q = self.to_q(queries[:, 0]).view(k_, h, e // h)
        u = torch.einsum("khd,hde->khe", q, w_k)  # [K, h, E]
        logits = torch.einsum("khe,kne->khn", u, xn) * self.scale + bias[:, :, 0].to(xn.dtype)
        mix = torch.einsum("khn,kne->khe", _softmax(logits), xn)  # [K, h, E]
        return self.to_out(torch.einsum("khe,hde->khd", mix, w_v).reshape(k_, 1, e))


class _Layer(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))


def _per_crop(t: Tensor, idx: Tensor) -> Tensor:
    """``t[idx]``: the rows of a per-image tensor ``[B, ...]`` for each crop (image index ``idx`` ``[K]``); for one
    image a broadcast view instead of a gathered copy (every index is then 0)."""
    if t.shape[0] == 1 and not torch.compiler.is_exporting():
        return t.expand(idx.shape[0], *t.shape[1:])
    return t[idx]


def _per_row(fn: Any, distinct: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """``fn`` applied to the distinct rows ``(crop [K, E], objects [B, D, E], index [K])`` → ``[K, 1 + D, E']``."""
    crop, objs, idx = distinct
    return torch.cat([fn(crop)[:, None], _per_crop(fn(objs), idx)], dim=1)


class GraphTransformer(nn.Module):
    """S2CNet's graph transformer: ``depth`` pre-norm layers whose queries are the graph-aggregated messages.

    Args:
        dim: node width E (256). depth: layers (2). heads: attention heads (4). mlp_dim: feed-forward width (1024).
    """

    def __init__(self, dim: int = 256, depth: int = 2, heads: int = 4, mlp_dim: int = 1024) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"s2cnet: depth must be >= 1, got {depth}")
        self.heads = heads
        self.layers = nn.ModuleList([_Layer(dim, heads, mlp_dim) for _ in range(depth)])
        self.fc_gcn = nn.Linear(dim, dim, bias=False)
        self.nl_gcn = nn.LayerNorm(dim)

    @staticmethod
    def aggregation_weights(a: Tensor, s: Tensor, mask: Tensor) -> Tensor:
        """``G = softmax_j(mean_h A ⊙ mean_h S)`` over the real nodes ``j`` → ``Tensor[K, n, n]`` (0 at padded
        columns). ``a``, ``s`` ``[K, h, n, n]``; ``mask`` ``[K, n]`` bool; node 0 (the crop) must be real."""
        logits = a.mean(1) * s.mean(1)
        return logits.masked_fill(~mask[:, None, :], float("-inf")).softmax(dim=-1)

    def aggregate(self, x: Tensor, g: Tensor) -> Tensor:
        """Messages ``x_ma = ReLU(LN(W · (G x)))``: ``x`` ``[K, n, E]``, ``g`` ``[K, m, n]`` → ``[K, m, E]``."""
        return F.relu(self.nl_gcn(_linear(self.fc_gcn, g @ x)))

    def forward(self, x: Tensor, a: Tensor, s: Tensor, mask: Tensor, crop_only: bool = False,
                distinct: tuple[Tensor, Tensor, Tensor] | None = None) -> Tensor:
        """Run the layers.

        Args:
            x (Tensor[K, n, E]): node features, node 0 = the crop.
            a, s (Tensor[K, h, n, n]): spatial and semantic biases.
            mask (Tensor[K, n] bool): real nodes (padded ones are ignored and come out as zeros).
            crop_only: return only the crop token ``Tensor[K, 1, E]``; the last layer then computes that row
                alone (the other rows of its output are never used by the crop-token head).
            distinct: ``(crop [K, E], objects [B, D, E], image index [K])`` when ``x`` is
                ``cat(crop[:, None], objects[index])`` (padded objects zero): the first layer then applies its
                row-wise maps (LayerNorm + key/value projection, and the aggregation's linear map, which commutes
                with ``G``) once per distinct row instead of once per crop and node. Same result, less work.

        Returns:
            ``Tensor[K, n, E]`` (``[K, 1, E]`` with ``crop_only``).
        """
        # all real: the masking multiplications are identities, skipped (an exported graph always masks)
        all_real = not torch.compiler.is_exporting() and bool(mask.all())
        keep = mask[..., None].to(x.dtype)
        x = x if all_real else x * keep
        g = self.aggregation_weights(a, s, mask)
        bias = (a + s).masked_fill(~mask[:, None, None, :], float("-inf"))
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            rows = slice(0, 1) if crop_only and i == last else slice(None)
            if i == 0 and distinct is not None:
                crop, objs, idx = distinct
                q = F.relu(self.nl_gcn(g[:, rows] @ _per_row(self.fc_gcn, distinct)))
                y = x[:, rows] + layer.attn.shared_keys(_linear(layer.attn.to_kv, layer.norm1(crop)),
                                                        _linear(layer.attn.to_kv, layer.norm1(objs)), q,
                                                        bias[:, :, rows], idx)
            elif rows == slice(0, 1):
                y = x[:, rows] + layer.attn.single_query(layer.norm1(x), self.aggregate(x, g[:, rows]),
                                                         bias[:, :, rows])
            else:  # y = x + attention, the add fused into the output projection
                q = self.aggregate(x, g[:, rows])
                y = layer.attn(_linear(layer.attn.to_kv, layer.norm1(x)), q, bias[:, :, rows], residual=x)
            x = _feed_forward(layer.ff, layer.norm2(y), residual=y)  # y + ff(LN(y))
            if rows != slice(0, 1) and not all_real:
                x = x * keep
        return x


def _head_rows(layers: nn.Sequential, y: Tensor) -> Tensor:
    """The rest of GAIC's head in eval mode on ``[K, C]`` rows instead of ``[K, C, 1, 1]`` maps: its 1×1 convs as
    matrix products and its BatchNorms as their running affine maps (the same function; a 1×1 convolution call on
    a 1×1 map costs more than the product itself) → ``Tensor[K]``."""
    for mod in layers:
        if isinstance(mod, nn.Conv2d):
            y = F.linear(y, mod.weight.flatten(1), mod.bias)  # gaic_head's later convs are all 1×1
        elif isinstance(mod, nn.BatchNorm2d):
            y = F.batch_norm(y, mod.running_mean, mod.running_var, mod.weight, mod.bias, False, 0.0, mod.eps)
        else:  # ReLU, Dropout (identity in eval), Identity
            y = mod(y)
    return y.reshape(-1)


# ---------------------------------------------------------------------------------------------- model
class S2CNet(LearnedCropModel):
    """S2CNet crop scorer (module docstring).

    Args:
        backbone: ``"mobilenet_v2"`` (S2CNet's), ``"shufflenet_v2"`` or ``"vgg16"``.
        reddim: channels of the fused stride-16 map (8).
        align_size: RoI / RoD size A (9 for GAICD v1, 15 for v2).
        bbox_num: object nodes D per graph (10 for v1, 5 for v2; 0 = no object nodes, the ablation).
        head: ``"crop"`` (crop token → Linear, v1) or ``"all"`` (every token → GAIC head, v2).
        node_dim, rel_dim, heads, depth, mlp_dim: graph sizes (256, 256, 4, 2, 1024).
        batchnorm, dropout: the all-token head's BatchNorms and dropout (True, 0.5, as the original).
        rank_weight: weight of the pairwise ranking term in the loss (0 = GAIC's SmoothL1 only).
        pretrained_backbone: load the backbone's local ImageNet weights; backbone_weights: an explicit file.

    Inputs of :meth:`forward_scores` beyond ``rois``: ``object_boxes`` ``Tensor[B, D', 4]`` xyxy input pixels and
    ``object_mask`` ``Tensor[B, D']`` bool (both or neither; neither = no objects).
    """

    name = "s2cnet"
    needs: frozenset[str] = frozenset({"people", "objects", "object_boxes"})
    #: the ONNX graph's object inputs: padded to a fixed ``bbox_num`` with the mask (:mod:`opencrop.models.inputs`)
    export_inputs: tuple[str, ...] = ("object_boxes", "object_mask")
    precisions: tuple[str, ...] = ("fp32", "bf16")

    def __init__(
        self,
        backbone: str = "mobilenet_v2",
        reddim: int = 8,
        align_size: int = 9,
        bbox_num: int = 10,
        head: str = "crop",
        node_dim: int = 256,
        rel_dim: int = 256,
        heads: int = 4,
        depth: int = 2,
        mlp_dim: int = 1024,
        batchnorm: bool = True,
        dropout: float = 0.5,
        rank_weight: float = 0.0,
        pretrained_backbone: bool = False,
        backbone_weights: str | None = None,
    ) -> None:
        if backbone not in _NN_NAME:
            raise ValueError(f"s2cnet: backbone must be one of {tuple(_NN_NAME)}, got {backbone!r}")
        if head not in _HEADS:
            raise ValueError(f"s2cnet: head must be one of {_HEADS}, got {head!r}")
        if align_size < 1 or bbox_num < 0 or reddim < 1:
            raise ValueError(f"s2cnet: align_size >= 1, bbox_num >= 0 and reddim >= 1 required, got "
                             f"{align_size}, {bbox_num}, {reddim}")
        side = math.isqrt(node_dim)
        if head == "all" and side * side != node_dim:
            raise ValueError(f"s2cnet: head='all' reshapes each token to a square; node_dim {node_dim} is not one")
        if rank_weight < 0:
            raise ValueError(f"s2cnet: rank_weight must be >= 0, got {rank_weight}")
        config = {"backbone": backbone, "reddim": int(reddim), "align_size": int(align_size),
                  "bbox_num": int(bbox_num), "head": head, "node_dim": int(node_dim), "rel_dim": int(rel_dim),
                  "heads": int(heads), "depth": int(depth), "mlp_dim": int(mlp_dim), "batchnorm": bool(batchnorm),
                  "dropout": float(dropout), "rank_weight": float(rank_weight)}
        super().__init__(Preprocess.gaic(), config)
        from opencrop.nn import GAICFusion, create_backbone

        self.backbone = create_backbone(_NN_NAME[backbone], pretrained=bool(pretrained_backbone),
                                        weights=backbone_weights, with_classifier=False)
        chans, strides = _feature_info(self.backbone)
        if strides[1] != 16 or strides[0] * 2 != strides[1] or strides[1] * 2 != strides[2]:
            raise ValueError(f"s2cnet: backbone {backbone} taps have strides {strides}, expected 8/16/32")
        self.stride = strides[1]
        self.neck = GAICFusion(chans, reddim)
        self.align_size, self.bbox_num, self.head_kind = int(align_size), int(bbox_num), head
        if self.bbox_num == 0:  # the ablation without object nodes: the graph takes image and rois only
            self.export_inputs = ()
        self.rank_weight = float(rank_weight)
        self.node_emb = nn.Sequential(nn.Linear(2 * reddim * align_size ** 2, node_dim), nn.LayerNorm(node_dim),
                                      nn.ReLU(inplace=True))
        self.relations = GraphRelations(node_dim, rel_dim, heads)
        self.graph = GraphTransformer(node_dim, depth, heads, mlp_dim)
        self.head: nn.Module = (nn.Linear(node_dim, 1) if head == "crop"
                                else gaic_head(1 + self.bbox_num, side, batchnorm, dropout))
        self._token_side = side
        self._warned_empty = False
        for m in [*self.neck.modules(), *self.head.modules()]:  # the original's weights_init (DimRed, FC_layers)
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ precision
    @contextlib.contextmanager
    def precision_context(self, stage: str) -> Iterator[None]:
        """At ``precision="bf16"``: ``prepare`` (backbone + fusion) float32, as every model; ``score`` with
        autocast off and the large products in bfloat16 through oneDNN (float32 accumulation):
        the node Linear's RoI part, every graph projection and feed-forward, v2's first head product. The rest
        stays float32: the align matrices, the relations (distances ``‖θ‖² − 2θ·φ + ‖φ‖²`` cancel), the attention
        logits and softmaxes, LayerNorms, the residual stream and the head after its first product.

        Raises:
            ValueError: bf16 off the CPU, or without oneDNN's fused linear (the bf16 products need it).
        """
        if self.precision == "fp32" or stage != "score":
            with super().precision_context(stage):
                yield
            return
        if self.device.type != "cpu" or not _onednn():
            raise ValueError(f"s2cnet: precision {self.precision!r} needs the model on the CPU and oneDNN's fused "
                             f"linear (device {self.device}, oneDNN linear {'available' if _onednn() else 'missing'})")
        before = _low()
        _LOW.on = True
        try:
            with torch.autocast("cpu", enabled=False):
                yield
        finally:
            _LOW.on = before

    # ------------------------------------------------------------------ network
    def forward_features(self, images: Tensor) -> Tensor:
        """``Tensor[B, 3, H, W]`` (H, W multiples of 32) → fused stride-16 map ``Tensor[B, reddim, H/16, W/16]``."""
        return self.neck(*self.backbone(images))

    def _box_features(self, features: Tensor, rois: Tensor) -> Tensor:
        """RoI ⊕ RoD of ``rois`` ``[K, 5]`` → node embeddings ``[K, node_dim]``.

        The same function as ``node_emb(flatten(stack(RoIAlignAvg, RoDAlignAvg)))`` (see
        :meth:`_box_features_plain`), reassociated: both aligns and the 2×2 average are linear in the features, so
        the Linear is applied through them. RoI: separable interpolation matrices (two small products per box
        instead of a gather of ``(A + 1)²`` bilinear samples). RoD: its samples are one fixed grid per image with
        the box blacked out, so ``W · RoD(k) = Σ_cells keep_k · V`` with ``V`` (the Linear applied to the grid) once
        per image. Gradients flow to the features and the Linear as before.
        """
        from opencrop.ops import rod_align_grid, rod_align_inside, roi_align_matrices

        a1, s = self.align_size + 1, 1.0 / self.stride
        b, c, h, w = features.shape
        w_roi, w_rod = self._node_weights(c)  # [E, A+1, C, A+1], [C, E, (A+1)²]
        e = w_roi.shape[0]
        bidx, ay, ax = roi_align_matrices(features, rois, a1, s)  # [K, A+1, H], [K, A+1, W]
        k = bidx.shape[0]
        # rows: Ay · F over every image at once ([K·(A+1), H] @ [H, B·C·W]), then each box's own image
        t = (ay.reshape(k * a1, h) @ features.permute(2, 0, 1, 3).reshape(h, b * c * w)).view(k, a1, b, c * w)
        t = t[:, :, 0] if b == 1 else t[torch.arange(k, device=t.device), :, bidx]  # [K, A+1, C·W]
        roi = torch.bmm(t.reshape(k, a1 * c, w), ax.transpose(1, 2))  # [K, (A+1)·C, A+1]: (row, channel, col)
        roi = roi.reshape(k, -1)
        packed = _packed(self.node_emb[0], "roi", w_roi, lambda t: t.reshape(e, -1), roi)
        z = (torch.addmm(self.node_emb[0].bias, roi, w_roi.reshape(e, -1).t()) if packed is None
             else _onednn_linear(roi, packed, self.node_emb[0].bias))
        grid = rod_align_grid(features, a1).flatten(2)  # [B, C, (A+1)²]
        v = (w_rod[None] * grid[:, :, None]).sum(1)  # [B, E, (A+1)²]: the Linear applied to the grid, per cell
        iny, inx = rod_align_inside(features, rois, a1, s)
        keep = (~(iny[:, :, None] & inx[:, None, :])).to(z.dtype).flatten(1)  # [K, (A+1)²]
        if b > 1:  # each box reads its own image's V
            keep = (F.one_hot(bidx, b).to(z.dtype)[:, :, None] * keep[:, None, :]).flatten(1)
        z = z + keep @ v.transpose(1, 2).reshape(-1, e)
        return self.node_emb[2](self.node_emb[1](z))

    def _node_weights(self, c: int) -> tuple[Tensor, Tensor]:
        """The node Linear's weight pushed through the 2×2 average (its adjoint: each of the ``(A+1)²`` samples
        feeds up to 4 output cells, ¼ each) → RoI part ``[E, A+1, C, A+1]`` (row, channel, column: the layout of
        :meth:`_box_features`' products) and RoD part ``[C, E, (A+1)²]``. Cached while the weight is unchanged and
        no gradient is wanted (inference)."""
        weight = self.node_emb[0].weight
        # inference tensors keep no version counter: not cached (models made inside torch.inference_mode)
        # nor while torch.export traces (fake tensors have no data pointer; the graph computes the product once)
        grad = (torch.is_grad_enabled() and weight.requires_grad) or weight.is_inference() \
            or torch.compiler.is_exporting()
        key = None if grad else (weight.data_ptr(), weight._version, weight.dtype, weight.device, c)
        cache = getattr(self, "_node_w_cache", None)
        if not grad and cache is not None and cache[0] == key:
            return cache[1]
        a = self.align_size
        wt = weight.reshape(-1, 1, a, a)  # [E·C·2, 1, A, A]
        wt = F.avg_pool2d(F.pad(wt, (1, 1, 1, 1)), 2, 1).view(weight.shape[0], c, 2, a + 1, a + 1)
        out = (wt[:, :, 0].permute(0, 2, 1, 3).contiguous(),
               wt[:, :, 1].reshape(weight.shape[0], c, -1).transpose(0, 1).contiguous())
        self._node_w_cache = None if grad else (key, out)
        return out

    def _box_features_plain(self, features: Tensor, rois: Tensor) -> Tensor:
        """:meth:`_box_features` computed as written in the paper: RoIAlignAvg ⊕ RoDAlignAvg (A×A), flattened in the
        original's order (channel, RoI/RoD, row, column), → Linear → LayerNorm → ReLU (the reference of the
        tests)."""
        from opencrop.ops import rod_align_avg, roi_align_avg

        a, s = self.align_size, 1.0 / self.stride
        x = torch.stack([roi_align_avg(features, rois, a, s), rod_align_avg(features, rois, a, s)], dim=2)
        return self.node_emb(x.flatten(1))  # [K, C, 2, A, A] → (channel, RoI/RoD, row, col)

    def forward_scores(self, features: Tensor, rois: Tensor, object_boxes: Tensor | None = None,
                       object_mask: Tensor | None = None, **extra: Tensor) -> Tensor:
        """Score ``rois`` ``Tensor[K, 5]`` ``(batch_index, x1, y1, x2, y2)`` input pixels → ``Tensor[K]``, on the
        normalised-MOS scale (``MOS ≈ 2.95 + 0.8 · score``).

        ``object_boxes`` ``Tensor[B, D', 4]`` xyxy input pixels and ``object_mask`` ``Tensor[B, D']`` bool (True =
        real box) give each image's objects; ``None`` = no objects. All crops × nodes go through the graph in
        one batched pass.
        """
        if extra:
            raise TypeError(f"s2cnet.forward_scores: unexpected inputs {sorted(extra)}")
        rois = rois.to(features.device, torch.float64 if features.dtype == torch.float64 else torch.float32)
        k = rois.shape[0]
        if k == 0:
            return features.new_zeros(0)
        b = features.shape[0]
        h_in, w_in = features.shape[-2] * self.stride, features.shape[-1] * self.stride
        bidx = rois[:, 0].long()
        boxes, mask = self._objects(object_boxes, object_mask, b, rois)
        d = boxes.shape[1]
        if d:  # crops and object boxes in one pass of the node embedding
            obj_rois = torch.cat([torch.arange(b, device=rois.device, dtype=rois.dtype).repeat_interleave(d)[:, None],
                                  boxes.reshape(-1, 4).to(rois.dtype)], dim=1)
            emb = self._box_features(features, torch.cat([rois, obj_rois]))
            crop = emb[:k]  # [K, E]
        else:
            crop = self._box_features(features, rois)  # [K, E]

        def centres(b: Tensor) -> Tensor:  # xyxy [..., 4] → (cx / W, cy / H); per column: W, H stay symbolic in export
            return torch.stack([(b[..., 0] + b[..., 2]) / (2 * w_in), (b[..., 1] + b[..., 3]) / (2 * h_in)], dim=-1)

        crop_c = centres(rois[:, 1:]).to(crop.dtype)  # [K, 2]
        rel = self.relations
        if d:
            obj = emb[k:].view(b, d, -1) * mask[..., None].to(crop.dtype)
            obj_c = centres(boxes).to(crop.dtype)  # [B, D, 2]

            # the crop row per crop, the object rows per image (computed once per image, broadcast per crop)
            x = torch.cat([crop[:, None], _per_crop(obj, bidx)], dim=1)
            node_mask = _node_blocks(mask.new_ones(k), mask, bidx)
            a, s = rel.forward_shared(crop, obj, crop_c, obj_c, bidx)
            distinct: tuple[Tensor, Tensor, Tensor] | None = (crop, obj, bidx)
        else:
            x, node_mask = crop[:, None], torch.ones(k, 1, dtype=torch.bool, device=crop.device)
            a, s = rel(x, crop_c[:, None])
            distinct = None
        out = self.graph(x, a, s, node_mask, crop_only=self.head_kind == "crop", distinct=distinct)
        if self.head_kind == "crop":
            return self.head(out[:, 0]).reshape(-1)
        n = out.shape[1]  # ≤ 1 + bbox_num: the dropped all-padding channels are zeros, so slice the conv
        first = self.head[0]  # its kernel covers the whole token map: the conv is one matrix product
        flat = out.reshape(k, -1)
        w = _packed(first, f"tokens{n}", first.weight, lambda t: t[:, :n].reshape(t.shape[0], -1), flat)
        y = (torch.addmm(first.bias, flat, first.weight[:, :n].reshape(first.weight.shape[0], -1).t()) if w is None
             else _onednn_linear(flat, w, first.bias))
        if self.training or torch.compiler.is_exporting():
            return self.head[1:](y[:, :, None, None]).reshape(-1)
        return _head_rows(self.head[1:], y)

    def _objects(self, boxes: Tensor | None, mask: Tensor | None, b: int, rois: Tensor) -> tuple[Tensor, Tensor]:
        """Checked, real-first, ``bbox_num``-wide object boxes ``[B, D, 4]`` and mask, with the columns padded in
        every image dropped (``D ≤ bbox_num``)."""
        if (boxes is None) != (mask is None):
            raise ValueError("s2cnet: give object_boxes and object_mask together (or neither for no objects)")
        if boxes is None or self.bbox_num == 0:
            return rois.new_zeros(b, 0, 4), torch.zeros(b, 0, dtype=torch.bool, device=rois.device)
        if (boxes.dim() != 3 or boxes.shape[0] != b or boxes.shape[2] != 4
                or tuple(mask.shape) != tuple(boxes.shape[:2])):
            raise ValueError(f"s2cnet: object_boxes must be Tensor[B={b}, D, 4] with object_mask Tensor[B, D], got "
                             f"{tuple(boxes.shape)} and {tuple(mask.shape)}")
        boxes, mask = fit_object_boxes(boxes.to(rois.device, rois.dtype), mask.to(rois.device), self.bbox_num)
        if torch.compiler.is_exporting():  # the ONNX graph keeps all bbox_num columns (padded ones are masked)
            return boxes, mask
        used = int(mask.sum(1).max()) if mask.numel() else 0
        return boxes[:, :used], mask[:, :used]

    @staticmethod
    def to_mos(scores: Tensor) -> Tensor:
        """Predicted scores → the MOS scale of GAICD (inverse of the training normalisation)."""
        return scores * GAIC_MOS_STD + GAIC_MOS_MEAN

    # ------------------------------------------------------------------ training / inference inputs
    def batch_extra(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """``object_boxes`` / ``object_mask`` of a collated batch.

        Raises:
            ValueError: the model has object nodes but the batch carries no object boxes (the records had none:
                attach S2CNet box files, e.g. ``data.loader_kwargs.objects``; see ``docs/s2cnet.md``).
        """
        if self.bbox_num == 0:
            return {}
        if batch.get("object_boxes") is None or batch.get("object_mask") is None:
            raise ValueError(
                "s2cnet: the batch has no object_boxes / object_mask, so the object graph would be empty; attach "
                "S2CNet box files to the records (GAICD: <root>/bbox/*.txt, or recipe data.loader_kwargs.objects: "
                "s2cnet_GAIC_boxes_raw.json) or train with model.kwargs.bbox_num=0 (no object nodes)"
            )
        mask = batch["object_mask"]
        empty = (~mask.bool().any(1)).nonzero().flatten().tolist()
        if empty and not self._warned_empty:
            names = batch.get("name") or []
            which = ", ".join(str(names[i]) for i in empty[:3] if i < len(names)) or f"{len(empty)} image(s)"
            warnings.warn(f"s2cnet: no object boxes for {which}: these images train and validate as object-free "
                          "graphs; are S2CNet's box files attached to every record (docs/s2cnet.md)? "
                          "(warned once per model)", stacklevel=2)
            self._warned_empty = True
        return {"object_boxes": batch["object_boxes"], "object_mask": mask}

    def extra_from_cues(self, cues: Cues | None, width: int, height: int, sx: float, sy: float) -> dict[str, Tensor]:
        """Object boxes for :meth:`prepare`: :func:`object_boxes_from_cues` scaled to input pixels →
        ``object_boxes`` ``[1, d, 4]``, ``object_mask`` ``[1, d]`` (``d ≤ bbox_num``, possibly 0)."""
        b = object_boxes_from_cues(require_object_cues(cues), self.bbox_num) * np.array([sx, sy, sx, sy])
        boxes = torch.as_tensor(b, dtype=torch.float32).reshape(1, -1, 4)
        return {"object_boxes": boxes, "object_mask": torch.ones(boxes.shape[:2], dtype=torch.bool)}

    def export_example(self, width: int, height: int) -> dict[str, Tensor]:
        """Two real object boxes and ``bbox_num − 2`` padded ones (the graph's inputs are always ``bbox_num`` wide)."""
        boxes = torch.zeros(1, self.bbox_num, 4)
        mask = torch.zeros(1, self.bbox_num, dtype=torch.bool)
        real = torch.tensor([[0.1 * width, 0.2 * height, 0.5 * width, 0.9 * height],
                             [0.5 * width, 0.1 * height, 0.9 * width, 0.6 * height]])[: self.bbox_num]
        boxes[0, : len(real)], mask[0, : len(real)] = real, True
        return {"object_boxes": boxes, "object_mask": mask}

    def compute_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """SmoothL1 on ``(MOS − 2.95) / 0.8`` (+ ``rank_weight`` × pairwise ranking loss on the same targets,
        per image) → ``{"loss", "regression"[, "rank"]}``."""
        pred = self.predict_batch(batch)
        reg = mos_smooth_l1(pred, batch["mos"])
        if self.rank_weight == 0:
            return {"loss": reg, "regression": reg.detach()}
        rk = rank_loss(pred, normalize_mos(batch["mos"].to(pred.dtype)), batch.get("counts"))
        return {"loss": reg + self.rank_weight * rk, "regression": reg.detach(), "rank": rk.detach()}


# ---------------------------------------------------------------------------------------------- registry
@register_model("s2cnet")
def s2cnet(weights: str | os.PathLike[str] | None = None, **cfg: Any) -> S2CNet:
    """S2CNet scorer (GAICD v1 configuration by default; ``PUBLISHED_CONFIGS["gaicd_v2"]`` for v2). ``weights``:
    an opencrop model file (its saved config is the default architecture). Returned in eval mode with weights.

    Example:
        >>> model = create_model("s2cnet", **PUBLISHED_CONFIGS["gaicd_v2"])  # doctest: +SKIP
    """
    return build_with_weights(S2CNet, weights, **cfg)
