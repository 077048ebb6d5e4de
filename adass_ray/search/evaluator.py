"""Quality of an architecture under the frozen supernet, Q(alpha) (DESIGN.md §2.3).

Q(alpha) is the exact AUC of the supernet run with alpha on a fixed validation subsample (the
same rows for every alpha, so scores are comparable). :class:`CachedEvaluator` computes every
candidate's unified output for those rows once (``[N, F, K, d]``). Where the backbone's first
layer is a sum of per-field terms (DNN, FM, DeepFM, DCN, DCNv2's deep tower; see
:mod:`adass_ray.model.folding`) it also stores each candidate's term of that layer, once per
distinct value of each field (a term depends on the row only through that field's vector), so
an architecture's first layer is one ``embedding_bag`` sum over the fields
and only the remaining layers run per architecture; otherwise (DLRM, or when the folded cache
would exceed ``max_fold_bytes``) scoring is a gather plus one backbone pass. Many architectures
share one call by being stacked along the batch dimension. Scores are memoised by architecture.

The supernet must stay frozen while an evaluator is in use: build a new evaluator for a new
snapshot (the cached candidate outputs and scores belong to one set of weights).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor

from adass_ray.data.batch import Batch
from adass_ray.errors import ConfigError, DataError
from adass_ray.metrics import auc
from adass_ray.model.folding import Fold, fold_backbone
from adass_ray.model.supernet import Supernet
from adass_ray.model.unifier import to_device

logger = logging.getLogger(__name__)

# Rows per all_unified call while building the cache: bounds the transient memory of the lookups.
UNIFIED_ROW_CHUNK = 16_384
# Default rows per backbone call. On a CPU a bigger stack is slower per row once activations
# leave the caches (measured: 4,000-row subsample, DNN 400x400x400, 2 threads: 32 ms per
# architecture alone, 48 ms stacked 8 per call), so stacking only pays for small subsamples;
# an accelerator wants large calls.
DEFAULT_MAX_ROWS = {"cpu": 8_192}
ACCELERATOR_MAX_ROWS = 1 << 18
# Most bytes the folded first-layer cache (distinct field values x candidates x first-layer
# width) may take per evaluator; above it the evaluator uses the unfolded path and logs why.
DEFAULT_FOLD_BYTES = 1 << 30
# Transient bytes of one block of per-field terms while the folded cache is built.
FOLD_BUILD_BYTES = 1 << 26


@contextmanager
def _frozen(net: Supernet) -> Iterator[None]:
    """Eval mode and no autograd for the duration; the previous mode is restored."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        net.train(was_training)


def _arch_key(arch: Sequence[int], nf: int, nk: int) -> tuple[int, ...]:
    key = tuple(int(a) for a in arch)
    if len(key) != nf or any(not 0 <= a < nk for a in key):
        raise ConfigError(f"architecture {list(key)}: need {nf} candidate indices in 0..{nk - 1}")
    return key


class CachedEvaluator:
    """Memoised, batched Q(alpha) on a fixed validation subsample.

    ``hits`` / ``misses`` count requested architectures found in / added to the memo (a repeat
    within one call is a hit); ``unified`` is the cache ``[N, F*K, d]`` of candidate outputs;
    ``fold`` the backbone's :class:`~adass_ray.model.folding.Fold` and ``folded`` its per-field
    first-layer terms ``[sum_f U_f * K, C]`` over each field's ``U_f`` distinct values (the
    bias is in the first field's terms; both ``None`` on the unfolded path).

    Args:
        supernet: the frozen supernet (its weights must not change afterwards).
        batch: the validation subsample, ``N`` rows with both labels present.
        chunk_archs: most architectures stacked into one backbone call.
        max_rows: most rows (architectures x rows) in one backbone call; default 8,192 on a
            CPU (see ``DEFAULT_MAX_ROWS``), 2^18 on an accelerator. Unfolded, a chunk holds
            ``clamp(max_rows // N, 1, chunk_archs)`` architectures; folded, ``chunk_archs``
            architectures run over blocks of ``max(1, max_rows // chunk_archs)`` rows (so a
            block's terms stay in the CPU caches while every architecture of the chunk reads
            them).
        fold: use the folded first layer where the backbone allows it.
        max_fold_bytes: most bytes of the folded cache (default ``DEFAULT_FOLD_BYTES``).
        device: where the cache lives and the backbone runs: the supernet's device (the
            default); naming another one is an error (move the supernet there first).

    Raises:
        ConfigError: ``chunk_archs`` or ``max_rows`` below 1, or ``device`` is not the
            supernet's.
        DataError: an empty batch, or one with a single label class (AUC is undefined).
    """

    def __init__(self, supernet: Supernet, batch: Batch, *, chunk_archs: int = 64,
                 max_rows: int | None = None, device: torch.device | str | None = None,
                 fold: bool = True, max_fold_bytes: int = DEFAULT_FOLD_BYTES) -> None:
        if chunk_archs < 1 or (max_rows is not None and max_rows < 1):
            raise ConfigError(f"evaluator: chunk_archs={chunk_archs}, max_rows={max_rows}; "
                              "need >= 1")
        labels = batch.label.detach().cpu().numpy()
        if len(batch) == 0 or labels.min() == labels.max():
            raise DataError(f"validation subsample of {len(batch)} rows needs both labels; "
                            "use more rows or another seed")
        self.supernet, self.device = supernet, supernet.embeddings.offsets.device
        want = torch.device(device) if device is not None else self.device
        if want.type != self.device.type or want.index not in (None, self.device.index):
            raise ConfigError(f"evaluator device {want} but the supernet is on {self.device}; "
                              "move the supernet first (supernet.to(device))")
        self.labels = labels
        self.rows = len(batch)
        self.num_fields, self.num_candidates = supernet.num_fields, len(supernet.candidate_sizes)
        if max_rows is None:
            max_rows = DEFAULT_MAX_ROWS.get(self.device.type, ACCELERATOR_MAX_ROWS)
        self.max_rows = max_rows
        self.archs_per_call = max(1, min(chunk_archs, max_rows // self.rows))
        on_device = batch.to(self.device)
        self.dense = on_device.dense
        with _frozen(supernet):
            # the first-order term does not depend on the architecture: once per row
            self.wide = supernet.wide_logits(on_device)
            parts = [supernet.all_unified(on_device.slice(lo, lo + UNIFIED_ROW_CHUNK))
                     for lo in range(0, self.rows, UNIFIED_ROW_CHUNK)]
        # [N, F*K, d]: one index_select picks any set of (field, candidate) columns.
        unified = torch.cat(parts) if len(parts) > 1 else parts[0]
        self.unified = unified.reshape(self.rows, -1, unified.shape[-1])
        self.fold: Fold | None = None
        self.folded: Tensor | None = None
        if fold:
            self._build_fold(max_fold_bytes)
        if self.fold is not None:
            self.archs_per_call = chunk_archs
        self._cache: dict[tuple[int, ...], float] = {}
        self.hits = 0
        self.misses = 0

    def _build_fold(self, limit: int) -> None:
        """Store every candidate's first-layer term per distinct field value, if the backbone
        folds and the terms fit in ``limit`` bytes.

        A field's term depends on the row only through that field's unified vectors, so the
        terms are stored once per distinct vector of each field (``U_f`` of them; a field of a
        few ids has a few) rather than once per row: the table is ``[sum_f U_f * K, C]``, and
        ``self._term_rows[r, f]`` is where row ``r``'s entries of field ``f`` start. The bias
        is added to the first field's terms, so an architecture's first layer is one sum.
        """
        net, nf, nk = self.supernet, self.num_fields, self.num_candidates
        fold = fold_backbone(net.backbone, num_fields=nf, d=net.d)
        if fold is None:
            logger.info("evaluator: the %s backbone's first layer does not fold; scoring with "
                        "the unfolded path", type(net.backbone).__name__)
            return
        unified = self.unified.view(self.rows, nf, nk, -1)
        # distinct vectors per field: [U_f, K, d] each, and each row's index among them
        distinct, inverse = zip(*(torch.unique(unified[:, f].flatten(1), dim=0,
                                               return_inverse=True) for f in range(nf)),
                                strict=True)
        counts = [len(u) for u in distinct]
        entry = nk * fold.width * self.unified.element_size()  # bytes per (field, value)
        if sum(counts) * entry > limit:
            logger.warning(
                "evaluator: the folded first-layer cache would take %.2f GiB (%d distinct field "
                "values x %d candidates x %d columns), above the %.2f GiB limit; scoring with the "
                "unfolded path (slower); use fewer validation rows or raise max_fold_bytes",
                sum(counts) * entry / 2**30, sum(counts), nk, fold.width, limit / 2**30)
            return
        starts = [sum(counts[:f]) for f in range(nf)]  # each field's first entry
        folded = unified.new_empty(sum(counts), nk, fold.width)
        # pad each field's distinct vectors to the longest list, so one Fold call covers every
        # field; rows past a field's count repeat its first vector and are not kept
        longest = max(counts)
        step = max(1, FOLD_BUILD_BYTES // (nf * entry))
        with _frozen(net):
            for lo in range(0, longest, step):
                hi = min(longest, lo + step)
                pick = torch.arange(lo, hi, device=self.device)
                block = torch.stack([u.view(-1, nk, unified.shape[-1])[
                    torch.where(pick < n, pick, 0)] for u, n in zip(distinct, counts,
                                                                   strict=True)], dim=1)
                terms = fold.contributions(block)  # [hi - lo, F, K, C]
                for f, n in enumerate(counts):
                    if lo < n:
                        at = starts[f] + lo
                        folded[at:at + min(hi, n) - lo] = terms[:min(hi, n) - lo, f]
            folded[:counts[0]] += fold.bias
        self.fold, self.folded = fold, folded.view(-1, fold.width)
        # [N, F]: the flat index of row r's first candidate term of field f
        self._term_rows = (torch.stack(inverse, dim=1)
                           + torch.tensor(starts, device=self.device)) * nk

    @property
    def cache(self) -> dict[tuple[int, ...], float]:
        """A copy of the memo ``architecture -> Q``."""
        return dict(self._cache)

    def load_cache(self, scores: Mapping[tuple[int, ...], float]) -> None:
        """Add scores computed elsewhere (same supernet snapshot and rows) to the memo.

        Raises:
            ConfigError: a key that is not an architecture of this supernet.
        """
        for arch, q in scores.items():
            self._cache[_arch_key(arch, self.num_fields, self.num_candidates)] = float(q)

    def evaluate(self, archs: Sequence[Sequence[int]]) -> list[float]:
        """Q of each architecture (memoised; the misses are scored in batched passes).

        Args:
            archs: architectures, each ``F`` candidate indices.

        Returns:
            One AUC per architecture, in order.

        Raises:
            ConfigError: an architecture of the wrong length or with an index out of range.
        """
        keys = [_arch_key(a, self.num_fields, self.num_candidates) for a in archs]
        todo: dict[tuple[int, ...], None] = {}  # the misses, in order, each once
        for key in keys:
            if key in self._cache or key in todo:
                self.hits += 1
            else:
                self.misses += 1
                todo[key] = None
        pending = list(todo)
        for lo in range(0, len(pending), self.archs_per_call):
            chunk = pending[lo:lo + self.archs_per_call]
            self._cache.update(zip(chunk, self._score(chunk), strict=True))
        return [self._cache[key] for key in keys]

    __call__ = evaluate

    def logits(self, archs: Sequence[tuple[int, ...]]) -> Tensor:
        """Backbone logits of several architectures in one pass.

        Args:
            archs: ``M`` validated architectures.

        Returns:
            ``[M, N]`` logits on the evaluator's device.
        """
        m, nf, nk = len(archs), self.num_fields, self.num_candidates
        a = to_device(torch.tensor(archs, dtype=torch.long), self.device)  # [M, F]
        columns = (torch.arange(nf, device=self.device) * nk + a).flatten()  # [M*F]
        if self.fold is not None:
            return self._folded_logits(columns.view(m, nf))
        with _frozen(self.supernet):
            # Row-major over (row, arch): the gather already is the backbone's contiguous input
            # [N*M, F, d], so no transpose copy; rows are independent, so the order is free.
            x = self.unified.index_select(1, columns).view(self.rows * m, nf, -1)
            wide = None if self.wide is None else self.wide.repeat_interleave(m, 0)
            out = self.supernet.forward_from_unified(
                x, self.dense.repeat_interleave(m, 0), wide
            )
        return out.view(self.rows, m).t()

    def _folded_logits(self, columns: Tensor) -> Tensor:
        """``[M, N]`` logits by the folded first layer, in blocks of rows."""
        assert self.fold is not None and self.folded is not None
        m, nf = columns.shape
        arch = columns - torch.arange(nf, device=self.device) * self.num_candidates  # [M, F]
        block = max(1, self.max_rows // m)
        out = self.folded.new_empty(self.rows, m)
        with _frozen(self.supernet):
            for lo in range(0, self.rows, block):
                hi = min(self.rows, lo + block)
                # bag (row, arch) = that row's term of each field's chosen candidate
                bags = (self._term_rows[lo:hi, None, :] + arch).view(-1, nf)  # [(hi-lo)*M, F]
                s = F.embedding_bag(bags, self.folded, mode="sum")
                fields = None
                if self.fold.needs_fields:
                    fields = self.unified[lo:hi].index_select(1, columns.flatten())
                    fields = fields.view(-1, nf, self.unified.shape[-1])
                out[lo:hi] = self.fold.head(s, fields).view(hi - lo, m)
                if self.wide is not None:  # the first-order term: the same for every arch
                    out[lo:hi] += self.wide[lo:hi, None]
        return out.t()

    def _score(self, archs: Sequence[tuple[int, ...]]) -> list[float]:
        logits = self.logits(archs).double().cpu().numpy()
        return [auc(self.labels, row) for row in logits]


def naive_quality(supernet: Supernet, batch: Batch, arch: Sequence[int]) -> float:
    """Q of one architecture by the plain full forward (embeddings + backbone), no caching.

    Args:
        supernet: the supernet (run in eval mode; its mode is restored).
        batch: ``N`` rows with both labels present.
        arch: ``F`` candidate indices.

    Returns:
        The exact AUC of the logits on ``batch``.

    Raises:
        ConfigError: a bad architecture.
        DataError: a single label class in ``batch``.
    """
    device = supernet.embeddings.offsets.device
    with _frozen(supernet):
        logits = supernet(batch.to(device), tuple(arch))
    return auc(batch.label, logits.double())
