"""The stand-alone mixed-size model for one fixed architecture (retrain, export, baselines).

Field f has one table ``V_f x alpha_f`` (``alpha_f = 0`` drops the field), a unifier
``LN(E_f[x] @ W_f)`` to width ``d`` and the same backbone classes as the supernet. The uniform
baseline is this model with every ``alpha_f = d_base``. Tables of fields that share a size are
stored in one flat ``[sum V_f, s]`` parameter (one lookup and one batched matmul per distinct
size); :meth:`MixedEmbeddings.field_params` gives each field's own views.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from adass_ray.data.batch import Batch
from adass_ray.data.feature_map import FeatureMap
from adass_ray.errors import ConfigError
from adass_ray.model.backbones import backbone_for_feature_map
from adass_ray.model.supernet import Supernet, resolve_sizes
from adass_ray.model.unifier import (
    capacity_error,
    init_proj,
    init_table,
    lookup,
    pooled_lookup,
    unify,
)
from adass_ray.model.wide import WIDE_SCALE, FirstOrder


class MixedEmbeddings(nn.Module):
    """One table + unifier per field at a fixed size each.

    Args:
        vocab_sizes: ``V_f`` per field (feature-map order).
        multi_valued: per field, whether it is multi-valued (mean-pooled).
        sizes: ``alpha_f`` per field, 0 = dropped (no table, no unifier, zero output).
        d: common output width; every ``alpha_f <= d`` (the capacity rule).
        sparse: make table gradients sparse.
        field_names: names for error messages (default ``f0, f1, ...``).

    Raises:
        ConfigError: mismatched lengths, negative sizes, ``d < 1`` or a size above ``d``.
    """

    offsets: Tensor  # [F_kept] row offset of each kept field in its group's table (group order)
    cols: Tensor  # [F_kept] ids column (single-valued) or multi index (multi-valued)
    position: Tensor  # [F] position of each field in the group-ordered output, -1 if dropped

    def __init__(
        self,
        *,
        vocab_sizes: Sequence[int],
        multi_valued: Sequence[bool],
        sizes: Sequence[int],
        d: int,
        sparse: bool = False,
        field_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        nf = len(vocab_sizes)
        if (
            not isinstance(d, int)
            or isinstance(d, bool)
            or d < 1
            or len(multi_valued) != nf
            or len(sizes) != nf
            or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in sizes)
        ):
            raise ConfigError(
                f"stand-alone embeddings: need d >= 1 and {nf} integer sizes >= 0; "
                f"got {list(sizes)}, d={d!r}"
            )
        names = tuple(field_names) if field_names else tuple(f"f{i}" for i in range(nf))
        above = [f for f in range(nf) if sizes[f] > d]
        if above:
            labels = [f"{names[f]}={sizes[f]}" for f in above]
            raise capacity_error("stand-alone sizes", labels, max(sizes), d)
        self.vocab_sizes, self.sizes = tuple(vocab_sizes), tuple(sizes)
        self.d, self.sparse = d, sparse
        single_cols = {f: i for i, f in enumerate(f for f in range(nf) if not multi_valued[f])}
        multi_idx = {f: i for i, f in enumerate(f for f in range(nf) if multi_valued[f])}
        # Per distinct size: its fields, single-valued first (one lookup), then multi-valued ones.
        self.groups: list[tuple[int, list[int], list[int]]] = []  # (size, singles, multis)
        self.tables, self.proj = nn.ParameterDict(), nn.ParameterDict()
        self.ln_weight, self.ln_bias = nn.ParameterDict(), nn.ParameterDict()
        # field -> (group key, position in the group, first row in the group's table)
        self._where: dict[int, tuple[str, int, int]] = {}
        position = torch.full((nf,), -1, dtype=torch.long)
        offsets, cols, done = [], [], 0
        for s in sorted({s for s in sizes if s > 0}):
            singles = [f for f in range(nf) if sizes[f] == s and not multi_valued[f]]
            multis = [f for f in range(nf) if sizes[f] == s and multi_valued[f]]
            key, row = f"s{s}", 0
            for p, f in enumerate(singles + multis):
                self._where[f] = (key, p, row)
                offsets.append(row)
                cols.append(single_cols[f] if f in single_cols else multi_idx[f])
                row += vocab_sizes[f]
                position[f] = done + p
            done += len(singles) + len(multis)
            self.groups.append((s, singles, [multi_idx[f] for f in multis]))
            self.tables[key] = nn.Parameter(torch.empty(row, s))
            self.proj[key] = nn.Parameter(torch.empty(len(singles) + len(multis), s, d))
            self.ln_weight[key] = nn.Parameter(torch.ones(len(singles) + len(multis), d))
            self.ln_bias[key] = nn.Parameter(torch.zeros(len(singles) + len(multis), d))
        # Flattened over groups in group order: row offset and ids column (or multi index).
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.long), persistent=False)
        self.register_buffer("cols", torch.tensor(cols, dtype=torch.long), persistent=False)
        self.register_buffer("position", position, persistent=False)
        self._in_order = position.tolist() == list(range(nf))  # e.g. the uniform baseline
        for t in self.tables.values():
            init_table(t)
        for p in self.proj.values():
            init_proj(p)

    def field_params(self, field: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The parameters of one kept field, as views of the fused storage.

        Args:
            field: feature-map index of a field whose size is not 0.

        Returns:
            ``(table [V_f, s], W [s, d], ln_weight [d], ln_bias [d])``.

        Raises:
            KeyError: the field is dropped (it has no table and no unifier).
        """
        key, p, row = self._where[field]
        table = self.tables[key][row : row + self.vocab_sizes[field]]
        return table, self.proj[key][p], self.ln_weight[key][p], self.ln_bias[key][p]

    def forward(self, ids: Tensor, multi: Sequence[Tensor]) -> Tensor:
        """Unified vectors of every field; a dropped field gives an exact zero vector.

        Args:
            ids: ``[B, F_single]`` single-valued ids; multi: ``[B, L_m]`` per multi-valued field.

        Returns:
            ``[B, F, d]`` (all zeros when every field is dropped).
        """
        # fp32 under a caller's autocast: only the backbone is meant to run in bf16
        with torch.autocast(ids.device.type, enabled=False):
            return self._forward(ids, multi)

    def _forward(self, ids: Tensor, multi: Sequence[Tensor]) -> Tensor:
        b, parts, done = ids.shape[0], [], 0
        for s, singles, multis in self.groups:
            key, pieces, n = f"s{s}", [], len(singles) + len(multis)
            if singles:  # field-major [G, B] so the batched matmul needs no transpose
                sl = slice(done, done + len(singles))
                flat = ids.t()[self.cols[sl]] + self.offsets[sl, None]
                pieces.append(lookup(flat, self.tables[key], sparse=self.sparse))
            for j, m in enumerate(multis, start=done + len(singles)):
                pooled = pooled_lookup(
                    self.tables[key], multi[m], self.offsets[j], sparse=self.sparse
                )
                pieces.append(pooled.unsqueeze(0))
            emb = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
            parts.append(unify(emb, self.proj[key], self.ln_weight[key], self.ln_bias[key]))
            done += n
        if 0 in self.sizes:
            dtype = parts[0].dtype if parts else torch.get_default_dtype()
            parts.append(torch.zeros(1, b, self.d, dtype=dtype, device=ids.device))
        # Field-major [F, B, d] blocks to [B, F, d]: whole-block copies, cheaper than a per-entry
        # gather; the backbone's flatten makes it contiguous.
        y = parts[0] if len(parts) == 1 else torch.cat(parts)
        if not self._in_order:
            y = y.index_select(0, torch.where(self.position >= 0, self.position, done))
        return y.transpose(0, 1)


class StandaloneModel(nn.Module):
    """Mixed-size embeddings + backbone for one fixed architecture: ``forward(batch) -> [B]``.

    ``wide``: an optional first-order term added to the backbone's logit (wide-and-deep).
    """

    def __init__(
        self, *, embeddings: MixedEmbeddings, backbone: nn.Module, wide: FirstOrder | None = None
    ) -> None:
        super().__init__()
        self.embeddings, self.backbone = embeddings, backbone
        self.wide = wide

    @classmethod
    def from_feature_map(
        cls,
        fm: FeatureMap,
        *,
        sizes: Sequence[int] | Mapping[str, int],
        d: int,
        backbone: str,
        sparse: bool = False,
        wide: bool = False,
        **backbone_kwargs: Any,
    ) -> StandaloneModel:
        """Fresh model with per-field ``sizes`` (sequence, or ``field -> size``; 0 = drop).

        Args:
            fm: the feature map (fields, V_f, numeric fields for DLRM).
            sizes: ``alpha_f`` per field, each in ``0..d``.
            d: the unified width; backbone: a name from ``BACKBONES``.
            sparse: sparse table gradients; wide: add the first-order term;
            backbone_kwargs: to ``build_backbone``.

        Returns:
            The model, freshly initialised.

        Raises:
            ConfigError: bad sizes (a size above ``d`` included), width or backbone.
        """
        emb = MixedEmbeddings(
            vocab_sizes=fm.vocab_sizes,
            multi_valued=[f.kind == "multi_valued" for f in fm.fields],
            sizes=resolve_sizes(sizes, fm.field_names),
            d=d,
            sparse=sparse,
            field_names=fm.field_names,
        )
        net = backbone_for_feature_map(fm, backbone, d=d, **backbone_kwargs)
        first = FirstOrder.from_feature_map(fm, sparse=sparse, scale=WIDE_SCALE) if wide else None
        return cls(embeddings=emb, backbone=net, wide=first)

    @classmethod
    def from_supernet(
        cls, supernet: Supernet, sizes: Sequence[int] | Mapping[str, int]
    ) -> StandaloneModel:
        """Inherit the supernet's weights for one architecture (tables, unifiers, LN, backbone).

        Args:
            supernet: the trained supernet.
            sizes: one candidate size per field (sequence, or ``field -> size``; 0 = drop).

        Returns:
            A model whose logits equal ``supernet(batch, arch)`` for that architecture.

        Raises:
            ConfigError: a size that is not one of the supernet's candidates.
        """
        arch = supernet.arch_of(sizes)
        sizes = supernet.sizes_of(arch)
        src = supernet.embeddings
        emb = MixedEmbeddings(
            vocab_sizes=src.vocab_sizes,
            multi_valued=[f in src.multi_fields for f in range(src.num_fields)],
            sizes=sizes,
            d=src.d,
            sparse=src.sparse,
            field_names=supernet.field_names,
        )
        with torch.no_grad():
            for f, k in enumerate(arch):
                if sizes[f] == 0:
                    continue
                for dst, value in zip(
                    emb.field_params(f), (src.table(f, k), *src.unifier(f, k)), strict=True
                ):
                    dst.copy_(value)
        wide = copy.deepcopy(supernet.wide) if supernet.wide is not None else None
        return cls(embeddings=emb, backbone=copy.deepcopy(supernet.backbone), wide=wide)

    def forward(self, batch: Batch) -> Tensor:
        """Logits of a batch.

        Args:
            batch: ids ``[B, F_single]``, multi-valued ids, dense ``[B, D]``.

        Returns:
            Logits ``[B]``.
        """
        logits = self.backbone(self.embeddings(batch.ids, batch.multi), batch.dense)
        if self.wide is not None:
            logits = logits + self.wide(batch.ids, batch.multi)
        return logits

    def embedding_params(self) -> int:
        """``C(alpha) = sum_f V_f * alpha_f`` (the budgeted figure; a dropped field costs 0)."""
        return sum(
            v * s for v, s in zip(self.embeddings.vocab_sizes, self.embeddings.sizes, strict=True)
        )

    def total_params(self) -> int:
        """Every parameter: tables, unifiers, LayerNorms and backbone.

        A dropped field has no table or unifier; the backbone keeps its input slot (a zero
        vector), so its input weights for that slot are still counted.
        """
        return sum(p.numel() for p in self.parameters())
