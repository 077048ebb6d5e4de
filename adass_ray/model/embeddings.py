"""Candidate embeddings and unifiers (DESIGN.md §2.1), with per-row architectures.

For every field f and candidate size s there is a table ``E_{f,s}`` (``V_f x s``) and a unifier
``u_{f,s}(x) = LN_{f,s}(E_{f,s}[x] @ W_{f,s})`` to the common width ``d``. LayerNorm has its own
affine parameters per (field, size): candidates share no weights (the ``nested`` layout shares
only the table). A leading candidate size 0 means "field dropped": the field's output is zero,
and it has a candidate index but no table. No candidate may exceed ``d`` (the capacity rule, see
:func:`adass_ray.model.unifier.validate_sizes`); sizes 1 and 2 are ordinary candidates.

Storage is fused so that a batch in which every row has its own architecture costs about what one
fixed architecture costs:

* ``separate`` layout: one flat table per candidate size holding all fields' tables one after
  another (field f at row offset ``sum_{g<f} V_g``), so a size needs one lookup for all fields;
  ``nested``: one flat ``sum V_f x s_K`` table, candidate s reads its first s columns.
* unifier weights per size as one ``[F, s, d]`` parameter, LayerNorm affine as ``[F, d]``.

Forward (see :meth:`CandidateEmbeddings.plan`): the (row, field) entries are grouped
by (size, field) into fixed-size *chunks* of ``chunk`` slots; per size there is one lookup of all
its chunks and one batched matmul with each chunk's field weights, then one gather puts every
entry back at ``[row, field]``. Padding is at most ``chunk - 1`` slots per (field, size) group.
Only the tables/unifiers of the candidates a row uses take part in its output, so gradients reach
nothing else (unused parameters get no gradient or exact zeros).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from adass_ray.data.feature_map import FeatureMap
from adass_ray.errors import ConfigError
from adass_ray.model.unifier import (
    init_proj,
    init_table,
    lookup,
    pooled_lookup,
    to_device,
    unify,
    validate_sizes,
)

__all__ = ["LAYOUTS", "CandidateEmbeddings", "RoutePlan", "validate_sizes"]

LAYOUTS: tuple[str, ...] = ("separate", "nested")
DEFAULT_CHUNK = 128


class _UniqueGather(torch.autograd.Function):
    """``y[index]`` along dim 0 for an ``index`` without repeats except into a constant row.

    The backward is a plain copy instead of autograd's accumulating scatter (several times
    faster on CPU); repeated indices only ever point at the constant zero row, whose gradient
    is discarded.
    """

    @staticmethod
    def forward(ctx: Any, y: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        ctx.rows = y.shape[0]
        return y.index_select(0, index)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (index,) = ctx.saved_tensors
        return grad.new_zeros(ctx.rows, grad.shape[1]).index_copy_(0, index, grad), None


@dataclass(frozen=True)
class RoutePlan:
    """Where each (row, field) entry of a per-row architecture goes (see ``plan``).

    Attributes:
        chunk: slots per chunk.
        slot: ``[B * F]`` index (row-major over ``[B, F]``) of each entry's output row in the
            concatenated chunk outputs (the extra last row, all zeros, for a dropped field).
        slot_value: ``[S]`` what each slot reads: the flat table row for a single-valued field,
            the batch row for a multi-valued one (0 for padding slots).
        chunk_field: ``[C]`` feature-map field of each chunk.
        size_ranges: per candidate, its ``[lo, hi)`` range of chunks.
        single_chunks: per candidate, how many of its chunks (the first) are single-valued.
        multi_chunks: per candidate, ``(multi index, chunks)`` for each multi-valued field used.
    """

    chunk: int
    slot: Tensor
    slot_value: Tensor
    chunk_field: Tensor
    size_ranges: tuple[tuple[int, int], ...]
    single_chunks: tuple[int, ...]
    multi_chunks: tuple[tuple[tuple[int, int], ...], ...]


class CandidateEmbeddings(nn.Module):
    """All candidate tables and unifiers of a supernet.

    Args:
        vocab_sizes: ``V_f`` per field, in feature-map order.
        multi_valued: per field, whether it is multi-valued (pooled) rather than single-valued.
        candidate_sizes: ``(s_1 < ... < s_K)``, optionally starting with 0 (= drop the field).
        d: the common width every unifier maps to.
        layout: ``separate`` (a table per field and size) or ``nested`` (one per field).
        sparse: make table gradients sparse (for ``SparseAdam``-style optimizers).

    Raises:
        ConfigError: bad sizes, width or layout.
    """

    # Index buffers (not saved: they follow from the constructor arguments).
    offsets: Tensor  # [F] first flat-table row of each field
    single_fields: Tensor  # [F_single] feature-map index of each ids column
    internal_to_fm: Tensor  # [F] internal order (single-valued, then multi-valued) -> fm index
    fm_to_internal: Tensor  # [F] inverse permutation

    def __init__(
        self,
        *,
        vocab_sizes: Sequence[int],
        multi_valued: Sequence[bool],
        candidate_sizes: Sequence[int],
        d: int,
        layout: str = "separate",
        sparse: bool = False,
    ) -> None:
        super().__init__()
        self.candidate_sizes = validate_sizes(candidate_sizes, d)
        if layout not in LAYOUTS:
            raise ConfigError(
                f"unknown embedding layout {layout!r}; choose one of {', '.join(LAYOUTS)}"
            )
        if len(multi_valued) != len(vocab_sizes) or not vocab_sizes:
            raise ConfigError(
                "candidate embeddings: need one multi_valued flag per field, >= 1 field"
            )
        self.vocab_sizes, self.d, self.layout, self.sparse = tuple(vocab_sizes), d, layout, sparse
        self.chunk = DEFAULT_CHUNK  # max slots per routing chunk: a speed knob, not semantics
        nf, rows = len(self.vocab_sizes), sum(self.vocab_sizes)
        # Internal order = single-valued fields, then multi-valued ones, so that per size the
        # single-valued chunks form one block served by one lookup.
        single = [f for f in range(nf) if not multi_valued[f]]
        self.multi_fields = tuple(f for f in range(nf) if multi_valued[f])
        internal = torch.tensor(single + list(self.multi_fields))
        self._internal_host = internal.clone()  # not a buffer: stays on the host for plan()
        for name, value in (
            ("offsets", torch.tensor((0, *self.vocab_sizes[:-1])).cumsum(0)),
            ("single_fields", torch.tensor(single, dtype=torch.long)),
            ("internal_to_fm", internal),
            ("fm_to_internal", torch.argsort(internal)),
        ):
            self.register_buffer(name, value, persistent=False)
        self.tables, self.proj = nn.ParameterDict(), nn.ParameterDict()
        self.ln_weight, self.ln_bias = nn.ParameterDict(), nn.ParameterDict()
        if layout == "nested":
            self.tables["shared"] = nn.Parameter(torch.empty(rows, self.candidate_sizes[-1]))
        for s in self.candidate_sizes[1:] if self.candidate_sizes[0] == 0 else self.candidate_sizes:
            if layout == "separate":
                self.tables[f"s{s}"] = nn.Parameter(torch.empty(rows, s))
            self.proj[f"s{s}"] = nn.Parameter(torch.empty(nf, s, d))
            self.ln_weight[f"s{s}"] = nn.Parameter(torch.ones(nf, d))
            self.ln_bias[f"s{s}"] = nn.Parameter(torch.zeros(nf, d))
        for t in self.tables.values():
            init_table(t)
        for p in self.proj.values():
            init_proj(p)

    @classmethod
    def from_feature_map(
        cls,
        fm: FeatureMap,
        *,
        d: int,
        candidate_sizes: Sequence[int] | None = None,
        layout: str = "separate",
        sparse: bool = False,
    ) -> CandidateEmbeddings:
        """Build from a feature map (candidate sizes default to the feature map's)."""
        return cls(
            vocab_sizes=fm.vocab_sizes,
            multi_valued=[f.kind == "multi_valued" for f in fm.fields],
            candidate_sizes=fm.candidate_sizes if candidate_sizes is None else candidate_sizes,
            d=d,
            layout=layout,
            sparse=sparse,
        )

    @property
    def num_fields(self) -> int:
        return len(self.vocab_sizes)

    def table(self, field: int, k: int) -> Tensor:
        """The view ``E_{f,s_k}`` (``[V_f, s_k]``) of the flat storage (``k`` not a drop)."""
        s, lo = self.candidate_sizes[k], sum(self.vocab_sizes[:field])
        t = self.tables["shared" if self.layout == "nested" else f"s{s}"]
        return t[lo : lo + self.vocab_sizes[field], :s]

    def unifier(self, field: int, k: int) -> tuple[Tensor, Tensor, Tensor]:
        """``(W [s_k, d], ln_weight [d], ln_bias [d])`` of candidate ``k`` of ``field``."""
        key = f"s{self.candidate_sizes[k]}"
        return self.proj[key][field], self.ln_weight[key][field], self.ln_bias[key][field]

    def _lookup(self, s: int, flat: Tensor) -> Tensor:
        """Vectors ``[..., s]`` of flat table rows ``flat``."""
        table = self.tables["shared" if self.layout == "nested" else f"s{s}"]
        out = lookup(flat, table, sparse=self.sparse)
        return out[..., :s] if self.layout == "nested" else out

    def _pool(self, s: int, field: int, ids: Tensor) -> Tensor:
        """Pooled vectors ``[N, s]`` of multi-valued ``field`` for padded ids ``[N, L]``."""
        table = self.tables["shared" if self.layout == "nested" else f"s{s}"]
        return pooled_lookup(table, ids, self.offsets[field], sparse=self.sparse)[:, :s]

    def plan(self, arch: Tensor, ids: Tensor, host_arch: Tensor | None = None) -> RoutePlan:
        """Group the entries of ``arch: [B, F]`` by (size, field) into chunks of ``self.chunk``.

        Chunks are ordered by candidate, then internal field; an entry's slot is its group's
        first chunk times ``chunk`` plus its rank among the group's rows. The chunk counts set
        the shapes of the step, so the host needs them: they are counted on ``host_arch`` (a CPU
        copy of ``arch``) when given or when ``arch`` is on the CPU; otherwise they are read
        back from the device, which makes the host wait for it.
        """
        b, nf = arch.shape
        nk = len(self.candidate_sizes)
        # Padding costs up to chunk - 1 slots per (field, size) group, i.e. about K * chunk / 2B
        # of the work: cap the chunk near B / 2K (powers of two) so small batches stay cheap.
        c = min(self.chunk, 1 << max(0, (b // (2 * nk)).bit_length() - 1))
        a = arch[:, self.internal_to_fm]
        # [F, K, B] running count per (field, candidate) along the rows; int32 halves the memory
        # traffic. Rows are the innermost dimension so the scan runs along contiguous memory: a
        # scan over the outer dimension of [B, F, K] parallelises over only F·K columns on CUDA
        # (about 20 ms a step at 65,536 rows on an H200, against well under 1 ms this way).
        at = a.t().unsqueeze(1)  # [F, 1, B]
        csum = (at == torch.arange(nk, device=a.device)[:, None]).cumsum(2, dtype=torch.int32)
        rank = csum.gather(1, at).squeeze(1).t() - 1  # [B, F]
        if host_arch is None and arch.device.type == "cpu":
            host_arch = arch
        if host_arch is not None:  # [F, K] counts on the host: a bincount per field
            ha = host_arch[:, self._internal_host] + torch.arange(nf) * nk
            counts = torch.bincount(ha.reshape(-1), minlength=nf * nk).view(nf, nk)
        else:
            counts = csum[:, :, -1].long()
        if self.candidate_sizes[0] == 0:
            counts[:, 0] = 0
        nch_kf = ((counts + c - 1) // c).t().reshape(-1)  # chunks per (candidate, field)
        nch = nch_kf.tolist()  # a device-to-host copy only without a host copy of arch
        nch_kf = to_device(nch_kf, arch.device)
        total = sum(nch)
        start = nch_kf.cumsum(0) - nch_kf
        fidx = torch.arange(nf, device=arch.device)
        slot = start[a * nf + fidx] * c + rank
        if self.candidate_sizes[0] == 0:
            slot = slot.masked_fill(a == 0, total * c)
        rows = torch.arange(b, device=arch.device).unsqueeze(1)
        values = torch.cat(
            [ids + self.offsets[self.single_fields], rows.expand(b, len(self.multi_fields))], 1
        )
        # Dropped entries write into the spare last slot, which nothing reads.
        slot_value = torch.zeros(total * c + 1, dtype=torch.long, device=arch.device)
        slot_value.scatter_(0, slot.reshape(-1), values.reshape(-1))
        chunk_field = self.internal_to_fm.repeat(nk).repeat_interleave(nch_kf, output_size=total)
        ns, ranges, singles = len(self.single_fields), [(0, 0)], []
        multis: list[tuple[tuple[int, int], ...]] = []
        for k in range(nk):
            per_field = nch[k * nf : (k + 1) * nf]
            ranges.append((ranges[-1][1], ranges[-1][1] + sum(per_field)))
            singles.append(sum(per_field[:ns]))
            multis.append(tuple((m, n) for m, n in enumerate(per_field[ns:]) if n))
        return RoutePlan(
            c,
            slot[:, self.fm_to_internal].reshape(-1),
            slot_value,
            chunk_field,
            tuple(ranges[1:]),
            tuple(singles),
            tuple(multis),
        )

    def forward(self, ids: Tensor, multi: Sequence[Tensor], arch: Tensor,
                host_arch: Tensor | None = None) -> Tensor:
        """Unified field vectors for a per-row architecture.

        Args:
            ids: ``[B, F_single]`` ids of the single-valued fields (feature-map order).
            multi: one ``[B, L_m]`` padded id tensor per multi-valued field.
            arch: ``[B, F]`` candidate indices (into ``candidate_sizes``) per row and field.
            host_arch: the same on the CPU, if ``arch`` is elsewhere (see :meth:`plan`).

        Returns:
            ``[B, F, d]``; a dropped field (size 0) is a zero vector.
        """
        # fp32 under a caller's autocast: only the backbone is meant to run in bf16
        with torch.autocast(ids.device.type, enabled=False):
            return self._forward(ids, multi, arch, host_arch)

    def _forward(self, ids: Tensor, multi: Sequence[Tensor], arch: Tensor,
                 host_arch: Tensor | None) -> Tensor:
        plan = self.plan(arch, ids, host_arch)
        c, parts = plan.chunk, []
        for k, (lo, hi) in enumerate(plan.size_ranges):
            if hi == lo:
                continue
            s, key = self.candidate_sizes[k], f"s{self.candidate_sizes[k]}"
            fields = plan.chunk_field[lo:hi]
            values = plan.slot_value[lo * c : hi * c].view(hi - lo, c)
            ns, pieces = plan.single_chunks[k], []
            if ns:
                pieces.append(self._lookup(s, values[:ns]))
            for m, n in plan.multi_chunks[k]:
                block = multi[m][values[ns : ns + n].reshape(-1)]
                pieces.append(self._pool(s, self.multi_fields[m], block).view(n, c, s))
                ns += n
            emb = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
            out = unify(
                emb,
                self.proj[key].index_select(0, fields),
                self.ln_weight[key].index_select(0, fields),
                self.ln_bias[key].index_select(0, fields),
            )
            parts.append(out.view(-1, self.d))
        parts.append(next(iter(self.proj.values())).new_zeros(1, self.d))
        out = _UniqueGather.apply(torch.cat(parts), plan.slot)
        return out.view(arch.shape[0], self.num_fields, self.d)

    def all_candidates(self, ids: Tensor, multi: Sequence[Tensor]) -> Tensor:
        """Every candidate's unified output (for caching in the search stage).

        Args:
            ids: ``[B, F_single]``; multi: ``[B, L_m]`` per multi-valued field.

        Returns:
            ``[B, F, K, d]`` (zeros for a size-0 candidate).
        """
        b, out = ids.shape[0], []
        flat = (ids + self.offsets[self.single_fields]).t()
        order = self.internal_to_fm
        for s in self.candidate_sizes:
            if s == 0:
                out.append(next(iter(self.proj.values())).new_zeros(self.num_fields, b, self.d))
                continue
            key, pieces = f"s{s}", []
            if len(self.single_fields):  # field-major, so the matmul needs no transpose
                pieces.append(self._lookup(s, flat))
            pieces += [
                self._pool(s, f, multi[m]).unsqueeze(0) for m, f in enumerate(self.multi_fields)
            ]
            emb = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
            y = unify(
                emb, self.proj[key][order], self.ln_weight[key][order], self.ln_bias[key][order]
            )
            out.append(y[self.fm_to_internal])
        return torch.stack(out, dim=2).transpose(0, 1).contiguous()
