"""Backbones: the part of a CTR model that sits on top of the unified field vectors.

Every backbone takes ``fields: [B, F, d]`` (one ``d``-wide vector per field, as produced by the
candidate embeddings' unifiers or by a stand-alone model) and ``dense: [B, D]`` (the numeric
fields' dense values; only DLRM reads them, the others see numeric fields through their bucketized
id fields) and returns logits ``[B]``. The same classes serve the supernet and the stand-alone
model, so a backbone never knows which embedding sizes produced its input.

Choices that are ours (documented in the project docs): DCN and DCNv2 combine the cross network
and the MLP in parallel (both read the flattened fields, their outputs are concatenated and a
linear layer makes the logit), as in the original DCN paper; the first-order term of FM / DeepFM
is a linear layer over the flattened field vectors rather than a per-id scalar table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from adass_ray.data.feature_map import FeatureMap
from adass_ray.errors import ConfigError

DEFAULT_HIDDEN: tuple[int, ...] = (400, 400, 400)


class MLP(nn.Sequential):
    """``Linear -> ReLU -> Dropout`` per hidden width, then an optional linear output layer.

    Args:
        in_dim: input width.
        hidden: hidden widths (may be empty).
        dropout: dropout probability after every hidden activation.
        out_dim: width of a final linear layer without activation; ``None`` ends at the last
            hidden activation (then ``out_features`` is ``hidden[-1]``, or ``in_dim`` if empty).

    Shapes: ``[..., in_dim] -> [..., out_features]``.
    """

    def __init__(
        self,
        *,
        in_dim: int,
        hidden: Sequence[int],
        dropout: float = 0.0,
        out_dim: int | None = None,
    ) -> None:
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        if out_dim is not None:
            layers.append(nn.Linear(width, out_dim))
            width = out_dim
        super().__init__(*layers)
        self.out_features = width


def fm_interaction(fields: Tensor) -> Tensor:
    """FM second-order term ``sum_{f<g} <v_f, v_g>`` via the square-of-sum identity.

    Args:
        fields: ``[B, F, d]``.

    Returns:
        ``[B]``.
    """
    square_of_sum = fields.sum(dim=1).pow(2)
    sum_of_square = fields.pow(2).sum(dim=1)
    return 0.5 * (square_of_sum - sum_of_square).sum(dim=1)


class DNN(nn.Module):
    """MLP over the concatenated field vectors: ``[B, F, d] -> [B]``."""

    def __init__(
        self, *, num_fields: int, d: int, hidden: Sequence[int], dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.mlp = MLP(in_dim=num_fields * d, hidden=hidden, dropout=dropout, out_dim=1)

    def forward(self, fields: Tensor, dense: Tensor | None = None) -> Tensor:
        return self.mlp(fields.flatten(1)).squeeze(1)


class FM(nn.Module):
    """Factorization machine over the field vectors plus a linear first-order term: ``-> [B]``."""

    def __init__(self, *, num_fields: int, d: int) -> None:
        super().__init__()
        self.linear = nn.Linear(num_fields * d, 1)

    def forward(self, fields: Tensor, dense: Tensor | None = None) -> Tensor:
        return self.linear(fields.flatten(1)).squeeze(1) + fm_interaction(fields)


class DeepFM(nn.Module):
    """FM (first + second order) plus a DNN on the same field vectors: ``-> [B]``."""

    def __init__(
        self, *, num_fields: int, d: int, hidden: Sequence[int], dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.fm = FM(num_fields=num_fields, d=d)
        self.dnn = DNN(num_fields=num_fields, d=d, hidden=hidden, dropout=dropout)

    def forward(self, fields: Tensor, dense: Tensor | None = None) -> Tensor:
        return self.fm(fields) + self.dnn(fields)


class CrossNet(nn.Module):
    """Cross network on ``x0: [B, W]``; ``full_rank`` picks DCNv2 layers over DCN (v1) ones.

    v1: ``x_{l+1} = x0 * (x_l . w_l) + b_l + x_l`` with ``w_l in R^W`` (rank-one crossing).
    v2: ``x_{l+1} = x0 * (W_l x_l + b_l) + x_l`` with ``W_l in R^{W x W}``.
    """

    def __init__(self, *, width: int, num_layers: int, full_rank: bool) -> None:
        super().__init__()
        out = width if full_rank else 1
        self.layers = nn.ModuleList(
            nn.Linear(width, out, bias=full_rank) for _ in range(num_layers)
        )
        # v1 adds its bias after the rank-one product, so it cannot live inside the Linear.
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros(width)) for _ in range(0 if full_rank else num_layers)
        )
        self.full_rank = full_rank

    def forward(self, x0: Tensor) -> Tensor:
        x = x0
        for i, layer in enumerate(self.layers):
            x = x0 * layer(x) + x if self.full_rank else x0 * layer(x) + self.biases[i] + x
        return x


class DCN(nn.Module):
    """Cross network and MLP in parallel over the flattened fields, joined by a linear layer.

    Args:
        num_fields, d: input ``[B, F, d]``.
        hidden, dropout: the MLP tower.
        cross_layers: depth of the cross network.
        full_rank: ``False`` for DCN (v1) cross layers, ``True`` for DCNv2.
    """

    def __init__(
        self,
        *,
        num_fields: int,
        d: int,
        hidden: Sequence[int],
        dropout: float = 0.0,
        cross_layers: int = 3,
        full_rank: bool = False,
    ) -> None:
        super().__init__()
        width = num_fields * d
        self.cross = CrossNet(width=width, num_layers=cross_layers, full_rank=full_rank)
        self.deep = MLP(in_dim=width, hidden=hidden, dropout=dropout)
        self.head = nn.Linear(width + self.deep.out_features, 1)

    def forward(self, fields: Tensor, dense: Tensor | None = None) -> Tensor:
        x0 = fields.flatten(1)
        return self.head(torch.cat([self.cross(x0), self.deep(x0)], dim=1)).squeeze(1)


class DLRM(nn.Module):
    """DLRM: bottom MLP on dense features, pairwise dot interaction, top MLP.

    The dense vector ``[B, D]`` goes through a bottom MLP to width ``d`` and joins the ``F`` field
    vectors; the ``(F+1)F/2`` pairwise dot products, concatenated with the bottom output, feed the
    top MLP. With ``num_dense == 0`` there is no bottom MLP and only the ``F(F-1)/2`` dots are used.

    Args:
        num_fields, d: input ``[B, F, d]``.
        num_dense: ``D``.
        hidden, dropout: the top MLP.
        bottom: hidden widths of the bottom MLP (its output width is ``d``).
    """

    _pairs: Tensor  # flat indices of the upper-triangle pairs in the [n, n] dot matrix

    def __init__(
        self,
        *,
        num_fields: int,
        d: int,
        num_dense: int,
        hidden: Sequence[int],
        dropout: float = 0.0,
        bottom: Sequence[int] = (64,),
    ) -> None:
        super().__init__()
        self.bottom = MLP(in_dim=num_dense, hidden=(*bottom, d)) if num_dense > 0 else None
        n = num_fields + (1 if num_dense > 0 else 0)
        rows, cols = torch.triu_indices(n, n, offset=1)
        self.register_buffer("_pairs", rows * n + cols, persistent=False)
        in_dim = rows.numel() + (d if num_dense > 0 else 0)
        self.top = MLP(in_dim=in_dim, hidden=hidden, dropout=dropout, out_dim=1)

    def forward(self, fields: Tensor, dense: Tensor | None = None) -> Tensor:
        vectors, parts = fields, []
        if self.bottom is not None:
            if dense is None:
                raise ValueError("DLRM was built with dense features; pass dense [B, D]")
            bottom = self.bottom(dense)
            vectors = torch.cat([bottom.unsqueeze(1), fields], dim=1)
            parts.append(bottom)
        dots = torch.bmm(vectors, vectors.transpose(1, 2)).flatten(1)
        parts.append(dots[:, self._pairs])
        return self.top(torch.cat(parts, dim=1)).squeeze(1)


BACKBONES: tuple[str, ...] = ("dnn", "deepfm", "dcn", "dcnv2", "dlrm", "fm")
BACKBONE_OPTIONS: tuple[str, ...] = ("hidden", "dropout", "cross_layers")


def check_backbone_options(options: Mapping[str, Any]) -> None:
    """Reject option names :func:`build_backbone` does not take (typos in configs).

    Raises:
        ConfigError: naming the unknown options and the valid ones.
    """
    unknown = sorted(set(options) - set(BACKBONE_OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown backbone options {unknown}; valid: {', '.join(BACKBONE_OPTIONS)}"
        )


def build_backbone(
    name: str,
    *,
    num_fields: int,
    d: int,
    num_dense: int = 0,
    hidden: Sequence[int] = DEFAULT_HIDDEN,
    dropout: float = 0.0,
    cross_layers: int = 3,
) -> nn.Module:
    """Build a backbone by name.

    Args:
        name: one of :data:`BACKBONES` (case-insensitive).
        num_fields: ``F``; d: field width; num_dense: ``D`` (read by DLRM only).
        hidden: MLP widths (the DNN tower, or DLRM's top MLP); dropout: after each hidden layer.
        cross_layers: depth of the DCN / DCNv2 cross network.

    Returns:
        A module mapping ``(fields [B, F, d], dense [B, D]) -> logits [B]``.

    Raises:
        ConfigError: unknown name, or non-positive sizes.
    """
    key = name.lower()
    if key not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if num_fields < 1 or d < 1 or num_dense < 0 or cross_layers < 0:
        raise ConfigError(
            f"backbone {name!r}: need num_fields >= 1, d >= 1, num_dense >= 0, cross_layers >= 0 "
            f"(got {num_fields}, {d}, {num_dense}, {cross_layers})"
        )
    if any(h < 1 for h in hidden) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"backbone {name!r}: hidden widths must be >= 1 and 0 <= dropout < 1")
    hidden = tuple(hidden)
    if key == "dnn":
        return DNN(num_fields=num_fields, d=d, hidden=hidden, dropout=dropout)
    if key == "fm":
        return FM(num_fields=num_fields, d=d)
    if key == "deepfm":
        return DeepFM(num_fields=num_fields, d=d, hidden=hidden, dropout=dropout)
    if key == "dlrm":
        return DLRM(num_fields=num_fields, d=d, num_dense=num_dense, hidden=hidden, dropout=dropout)
    return DCN(
        num_fields=num_fields,
        d=d,
        hidden=hidden,
        dropout=dropout,
        cross_layers=cross_layers,
        full_rank=key == "dcnv2",
    )


def backbone_for_feature_map(fm: FeatureMap, name: str, *, d: int, **kwargs: Any) -> nn.Module:
    """:func:`build_backbone` sized for ``fm`` (its field count and numeric fields).

    Raises:
        ConfigError: unknown name or option, or bad sizes.
    """
    check_backbone_options(kwargs)
    return build_backbone(
        name, num_fields=fm.num_fields, d=d, num_dense=len(fm.numeric_fields), **kwargs
    )
