"""Conditional-DETR building blocks of SetCrop (Meng et al., "Conditional DETR for Fast Training Convergence",
ICCV 2021, arXiv 2108.06152; as used by Jia et al., CVPR 2022; ``docs/systems.md`` §6.1).

Written from the papers and the structure of the released code (read, not copied). Module and parameter names
follow the released ``models/transformer.py`` / ``conditional_detr.py`` layout (``transformer.encoder.layers.N``,
``transformer.decoder.layers.N.sa_qcontent_proj``, ``decoder.query_scale``, ``decoder.ref_point_head``, …) so that
a COCO Conditional-DETR checkpoint maps onto this model by renaming only the backbone prefix
(:func:`opencrop.models.setcrop.convert_conditional_detr_state_dict`).

Tensor layout: batch first. ``src`` / ``memory`` ``[B, N, d]`` (``N = h · w`` tokens of the stride-16/32 map),
queries ``[B, Q, d]``; reference points ``[B, Q, 2]`` normalised ``(x, y)`` in [0, 1]. All images of a batch share
one size (no padding masks).

* :class:`PositionEmbeddingSine` — DETR's normalised sine encoding of the feature-map grid, ``d/2`` channels per axis
  (``[pos_y, pos_x]``), temperature 10,000, scale 2π.
* :class:`TransformerEncoderLayer` — post-norm self-attention (q = k = src + pos) + FFN.
* :class:`ConditionalDecoderLayer` — post-norm; self-attention on content + query positions; **conditional
  cross-attention**: per head, the query is the concatenation of its content part and the sine embedding of its
  reference point (scaled by ``query_scale(content)`` after the first layer), the key the concatenation of the
  memory content and its positional encoding (the first layer adds the positions to the content parts as DETR);
  values are the memory content. Attention projections are plain linears outside the attention (no in-projection).
* :class:`ConditionalDecoder` — reference points ``sigmoid(ref_point_head(query_pos))`` (one per query, fixed over
  the layers), the final LayerNorm applied to every layer's output (auxiliary outputs). The content starts at 0,
  so the first layer's self-attention content projections act through their bias only; their weights are frozen.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MLP",
    "ConditionalDecoder",
    "ConditionalDecoderLayer",
    "PositionEmbeddingSine",
    "SetTransformer",
    "TransformerEncoderLayer",
    "inverse_sigmoid",
    "sine_embed_points",
]


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """``log(x / (1 − x))`` with ``x`` clamped to ``[0, 1]`` and both terms to ``≥ eps`` (DETR's helper)."""
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


class MLP(nn.Module):
    """``num_layers`` linears ``in → hidden → … → out`` with ReLU between them (DETR's box head / FFN)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, [*dims[1:], out_dim], strict=True))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def _sin_cos(x: Tensor, num_feats: int, temperature: float = 10000.0) -> Tensor:
    """``x [...]`` (already scaled) → ``[..., num_feats]``: ``sin`` on even, ``cos`` on odd channels, the pair
    ``2i, 2i+1`` sharing the frequency ``temperature^(2i / num_feats)`` (DETR's interleaving)."""
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=x.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)
    v = x[..., None].float() / dim_t
    return torch.stack((v[..., 0::2].sin(), v[..., 1::2].cos()), dim=-1).flatten(-2)


def sine_embed_points(points: Tensor, d_model: int) -> Tensor:
    """Sine embedding of normalised reference points ``[B, Q, 2]`` (x, y) → ``[B, Q, d_model]`` = ``[emb(y), emb(x)]``
    with ``d_model / 2`` channels per coordinate, each coordinate scaled by 2π (Conditional DETR's
    ``gen_sineembed_for_position``, generalised from d = 256)."""
    half = d_model // 2
    scale = 2 * math.pi
    return torch.cat([_sin_cos(points[..., 1] * scale, half), _sin_cos(points[..., 0] * scale, half)], dim=-1)


class PositionEmbeddingSine(nn.Module):
    """Normalised 2-D sine positions of a ``[B, C, h, w]`` map → ``[B, 2 · num_feats, h, w]`` (``[pos_y, pos_x]``).

    Row / column indices ``1 … h`` / ``1 … w`` are divided by ``h`` / ``w`` (+1e-6) and multiplied by 2π."""

    def __init__(self, num_feats: int = 128, temperature: float = 10000.0) -> None:
        super().__init__()
        self.num_feats = int(num_feats)
        self.temperature = float(temperature)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        eps, scale = 1e-6, 2 * math.pi
        y = torch.arange(1, h + 1, dtype=torch.float32, device=x.device) / (h + eps) * scale
        xx = torch.arange(1, w + 1, dtype=torch.float32, device=x.device) / (w + eps) * scale
        py = _sin_cos(y, self.num_feats, self.temperature)[:, None, :].expand(h, w, self.num_feats)
        px = _sin_cos(xx, self.num_feats, self.temperature)[None, :, :].expand(h, w, self.num_feats)
        pos = torch.cat([py, px], dim=-1).permute(2, 0, 1)
        return pos[None].expand(b, -1, -1, -1).to(x.dtype)


class _ProjectedAttention(nn.Module):
    """Multi-head attention whose inputs are already projected (Conditional DETR's attention module): scaled dot
    product over ``num_heads`` heads of ``q, k [B, *, e]`` (head dim ``e / num_heads``) and ``v [B, N, dv]``, dropout
    on the weights, then ``out_proj`` (``dv → dv``)."""

    def __init__(self, embed_dim: int, num_heads: int, value_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        if embed_dim % num_heads or value_dim % num_heads:
            raise ValueError(f"attention: dims {embed_dim}/{value_dim} not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.dropout = float(dropout)
        self.out_proj = nn.Linear(value_dim, value_dim)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        b, nq, e = q.shape
        h = self.num_heads
        qh = q.reshape(b, nq, h, e // h).transpose(1, 2)
        kh = k.reshape(b, k.shape[1], h, e // h).transpose(1, 2)
        vh = v.reshape(b, v.shape[1], h, v.shape[2] // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(qh, kh, vh, dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).reshape(b, nq, v.shape[2]))


class TransformerEncoderLayer(nn.Module):
    """Post-norm encoder layer: ``src = norm1(src + SA(src + pos, src + pos, src)); src = norm2(src + FFN(src))``."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src: Tensor, pos: Tensor) -> Tensor:
        q = src + pos
        src = self.norm1(src + self.dropout1(self.self_attn(q, q, src, need_weights=False)[0]))
        src2 = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout2(src2))


class ConditionalDecoderLayer(nn.Module):
    """Conditional-DETR decoder layer (module docstring). ``first`` layers own ``ca_qpos_proj``."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, first: bool) -> None:
        super().__init__()
        self.nhead = nhead
        self.sa_qcontent_proj = nn.Linear(d_model, d_model)
        self.sa_qpos_proj = nn.Linear(d_model, d_model)
        self.sa_kcontent_proj = nn.Linear(d_model, d_model)
        self.sa_kpos_proj = nn.Linear(d_model, d_model)
        self.sa_v_proj = nn.Linear(d_model, d_model)
        self.self_attn = _ProjectedAttention(d_model, nhead, d_model, dropout)
        self.ca_qcontent_proj = nn.Linear(d_model, d_model)
        self.ca_qpos_proj = nn.Linear(d_model, d_model) if first else None
        self.ca_kcontent_proj = nn.Linear(d_model, d_model)
        self.ca_kpos_proj = nn.Linear(d_model, d_model)
        self.ca_v_proj = nn.Linear(d_model, d_model)
        self.ca_qpos_sine_proj = nn.Linear(d_model, d_model)
        self.cross_attn = _ProjectedAttention(2 * d_model, nhead, d_model, dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, tgt: Tensor, memory: Tensor, pos: Tensor, query_pos: Tensor, query_sine: Tensor) -> Tensor:
        """``tgt [B, Q, d]`` content, ``memory``/``pos [B, N, d]``, ``query_pos [B, Q, d]`` (the learnable anchors),
        ``query_sine [B, Q, d]`` (sine embedding of the reference points, already scaled)."""
        b, nq, d = tgt.shape
        h = self.nhead
        # self-attention: content + query position on queries and keys
        q = self.sa_qcontent_proj(tgt) + self.sa_qpos_proj(query_pos)
        k = self.sa_kcontent_proj(tgt) + self.sa_kpos_proj(query_pos)
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(q, k, self.sa_v_proj(tgt))))
        # conditional cross-attention: [content | spatial] per head on both sides
        q_content = self.ca_qcontent_proj(tgt)
        k_content = self.ca_kcontent_proj(memory)
        k_pos = self.ca_kpos_proj(pos)
        if self.ca_qpos_proj is not None:
            q_content = q_content + self.ca_qpos_proj(query_pos)
            k_content = k_content + k_pos
        n = memory.shape[1]
        q = torch.cat([q_content.reshape(b, nq, h, d // h),
                       self.ca_qpos_sine_proj(query_sine).reshape(b, nq, h, d // h)], dim=3).reshape(b, nq, 2 * d)
        k = torch.cat([k_content.reshape(b, n, h, d // h), k_pos.reshape(b, n, h, d // h)], dim=3).reshape(b, n, 2 * d)
        tgt = self.norm2(tgt + self.dropout2(self.cross_attn(q, k, self.ca_v_proj(memory))))
        tgt2 = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout3(tgt2))


class ConditionalDecoder(nn.Module):
    """``num_layers`` :class:`ConditionalDecoderLayer` → ``(hs [L, B, Q, d] normalised outputs of every layer,
    reference [B, Q, 2])``."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, num_layers: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.layers = nn.ModuleList(
            ConditionalDecoderLayer(d_model, nhead, dim_feedforward, dropout, first=i == 0) for i in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.query_scale = MLP(d_model, d_model, d_model, 2)
        self.ref_point_head = MLP(d_model, d_model, 2, 2)
        # the first layer's content is 0, so its self-attention content projections only ever add their bias:
        # their weights get no gradient and are frozen (kept for checkpoint compatibility)
        first = self.layers[0]
        for proj in (first.sa_qcontent_proj, first.sa_kcontent_proj, first.sa_v_proj):
            proj.weight.requires_grad_(False)

    def forward(self, memory: Tensor, pos: Tensor, query_pos: Tensor,
                reference: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``reference [B, Q, 2]`` given (SetCrop's box priors) replaces ``sigmoid(ref_point_head(query_pos))``."""
        if reference is None:
            reference = self.ref_point_head(query_pos).sigmoid()
        out = torch.zeros_like(query_pos)
        inter = []
        for i, layer in enumerate(self.layers):
            sine = sine_embed_points(reference, self.d_model).to(out.dtype)
            if i > 0:
                sine = sine * self.query_scale(out)
            out = layer(out, memory, pos, query_pos, sine)
            inter.append(self.norm(out))
        return torch.stack(inter), reference


class SetTransformer(nn.Module):
    """Encoder (``enc_layers`` × :class:`TransformerEncoderLayer`) + :class:`ConditionalDecoder`.

    Forward: ``src [B, d, h, w]`` (projected features), ``pos [B, d, h, w]``, ``query_embed [Q, d]`` →
    ``(hs [L, B, Q, d], reference [B, Q, 2])``; an optional ``reference [B, Q, 2]`` (normalised x, y) replaces the
    decoder's ``ref_point_head``. Parameters with more than one dimension are Xavier-uniform
    initialised (DETR's ``_reset_parameters``).
    """

    def __init__(self, d_model: int = 256, nhead: int = 8, num_encoder_layers: int = 6, num_decoder_layers: int = 6,
                 dim_feedforward: int = 2048, dropout: float = 0.1) -> None:
        super().__init__()
        if d_model % nhead or d_model % 4:
            raise ValueError(f"setcrop: hidden_dim {d_model} must be divisible by nheads {nhead} and by 4")
        layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_encoder_layers))
        self.decoder = ConditionalDecoder(d_model, nhead, dim_feedforward, dropout, num_decoder_layers)
        self.d_model = d_model
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, src: Tensor, pos: Tensor, query_embed: Tensor,
                reference: Tensor | None = None) -> tuple[Tensor, Tensor]:
        b = src.shape[0]
        memory = src.flatten(2).transpose(1, 2)
        pos = pos.flatten(2).transpose(1, 2)
        for layer in self.encoder.layers:
            memory = layer(memory, pos)
        query_pos = query_embed[None].expand(b, -1, -1)
        return self.decoder(memory, pos, query_pos, reference)
