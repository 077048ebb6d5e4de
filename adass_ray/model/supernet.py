"""The supernet (DESIGN.md §2.1): candidate embeddings + unifiers + one backbone.

An architecture is a value passed to every call: candidate indices (into ``candidate_sizes``),
either one ``Sequence[int]`` of length F for all rows or a ``LongTensor [B, F]`` giving each row
its own path (per-row sampling in stage 1). Nothing about the architecture is stored on the
module. For the search stage, :meth:`Supernet.all_unified` computes every candidate's unified
output once; :func:`select_unified` plus :meth:`Supernet.forward_from_unified` then score any
architecture with a gather and a backbone pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from adass_ray.data.batch import Batch
from adass_ray.data.feature_map import FeatureMap
from adass_ray.errors import ConfigError
from adass_ray.model.backbones import backbone_for_feature_map
from adass_ray.model.embeddings import CandidateEmbeddings
from adass_ray.model.unifier import to_device, validate_sizes
from adass_ray.model.wide import WIDE_SCALE, FirstOrder

Arch = Tensor | Sequence[int]


def select_unified(all_unified: Tensor, arch: Tensor) -> Tensor:
    """Pick each row's candidates from a cache of all candidates' unified outputs.

    Args:
        all_unified: ``[B, F, K, d]`` from :meth:`Supernet.all_unified`.
        arch: ``[B, F]`` or ``[F]`` candidate indices.

    Returns:
        ``[B, F, d]``.
    """
    b, nf, _, d = all_unified.shape
    index = arch.to(all_unified.device).expand(b, nf)[:, :, None, None].expand(b, nf, 1, d)
    return all_unified.gather(2, index).squeeze(2)


class Supernet(nn.Module):
    """Candidate embeddings and a backbone; the architecture is an argument of every call.

    Args:
        embeddings: the candidate tables and unifiers.
        backbone: maps ``(fields [B, F, d], dense [B, D])`` to logits ``[B]``.
        field_names: field names in feature-map order (for size mappings and reports).
        wide: an optional first-order term added to every architecture's logit (it does not
            depend on the architecture, so the search scores it once per row).

    Raises:
        ConfigError: a candidate size above the unified width ``d`` (the capacity rule), or
            field names that do not match the fields.
    """

    def __init__(
        self,
        *,
        embeddings: CandidateEmbeddings,
        backbone: nn.Module,
        field_names: Sequence[str] | None = None,
        wide: FirstOrder | None = None,
    ) -> None:
        super().__init__()
        validate_sizes(embeddings.candidate_sizes, embeddings.d)
        self.embeddings, self.backbone = embeddings, backbone
        self.wide = wide
        nf = embeddings.num_fields
        self.field_names = tuple(field_names) if field_names else tuple(f"f{i}" for i in range(nf))
        if len(self.field_names) != nf:
            raise ConfigError(f"supernet: {len(self.field_names)} field names for {nf} fields")

    @classmethod
    def from_feature_map(
        cls,
        fm: FeatureMap,
        *,
        d: int,
        backbone: str,
        candidate_sizes: Sequence[int] | None = None,
        layout: str = "separate",
        sparse: bool = False,
        wide: bool = False,
        **backbone_kwargs: Any,
    ) -> Supernet:
        """Build for a feature map; ``backbone_kwargs`` go to :func:`build_backbone`.

        Raises:
            ConfigError: bad sizes, width, layout or backbone.
        """
        emb = CandidateEmbeddings.from_feature_map(
            fm, d=d, candidate_sizes=candidate_sizes, layout=layout, sparse=sparse
        )
        net = backbone_for_feature_map(fm, backbone, d=d, **backbone_kwargs)
        first = FirstOrder.from_feature_map(fm, sparse=sparse, scale=WIDE_SCALE) if wide else None
        return cls(embeddings=emb, backbone=net, field_names=fm.field_names, wide=first)

    @property
    def candidate_sizes(self) -> tuple[int, ...]:
        return self.embeddings.candidate_sizes

    @property
    def num_fields(self) -> int:
        return self.embeddings.num_fields

    @property
    def d(self) -> int:
        return self.embeddings.d

    def arch_tensor(self, arch: Arch, batch_size: int) -> Tensor:
        """Validate an architecture and return it as ``LongTensor [B, F]`` on the model's device.

        A sequence or a CPU tensor is checked on the host and copied without blocking; checking
        a tensor already on an accelerator makes the host wait for it (pass CPU paths there).

        Raises:
            ConfigError: wrong length/shape or a candidate index out of range.
        """
        nf, nk = self.num_fields, len(self.candidate_sizes)
        device = self.embeddings.offsets.device
        if not isinstance(arch, Tensor):
            arch = tuple(int(a) for a in arch)
            if len(arch) != nf or any(not 0 <= a < nk for a in arch):
                raise ConfigError(
                    f"architecture {list(arch)}: need {nf} candidate indices in 0..{nk - 1}"
                )
            return to_device(torch.tensor(arch), device).expand(batch_size, nf)
        if (
            arch.dim() not in (1, 2)
            or arch.shape[-1] != nf
            or (arch.dim() == 2 and arch.shape[0] != batch_size)
            or arch.dtype.is_floating_point
        ):
            raise ConfigError(
                f"architecture tensor of shape {tuple(arch.shape)}: need [{batch_size}, {nf}] ints"
            )
        if arch.numel() and (int(arch.min()) < 0 or int(arch.max()) >= nk):
            raise ConfigError(f"architecture tensor: candidate indices must be in 0..{nk - 1}")
        return to_device(arch.to(torch.long), device).expand(batch_size, nf)

    def unified(self, batch: Batch, arch: Arch) -> Tensor:
        """Unified field vectors ``[B, F, d]`` of ``batch`` under ``arch`` (shared or per row).

        A sequence or a CPU tensor ``arch`` also serves as the host copy the routing plan
        counts on, so the step needs no device-to-host copy (see ``CandidateEmbeddings.plan``).
        """
        a = self.arch_tensor(arch, len(batch))
        host = None
        if not isinstance(arch, Tensor):
            host = torch.tensor(tuple(int(i) for i in arch)).expand(len(batch), -1)
        elif arch.device.type == "cpu":
            host = arch.to(torch.long).expand(len(batch), -1)
        return self.embeddings(batch.ids, batch.multi, a, host_arch=host)

    def all_unified(self, batch: Batch) -> Tensor:
        """Every candidate's unified output ``[B, F, K, d]`` (cache it for the search stage)."""
        return self.embeddings.all_candidates(batch.ids, batch.multi)

    def wide_logits(self, batch: Batch) -> Tensor | None:
        """The first-order term of ``batch`` ``[B]`` (None without one)."""
        return None if self.wide is None else self.wide(batch.ids, batch.multi)

    def forward_from_unified(
        self, unified: Tensor, dense: Tensor, wide: Tensor | None = None
    ) -> Tensor:
        """Logits from cached unified vectors.

        Args:
            unified: ``[B, F, d]`` (e.g. :func:`select_unified` of :meth:`all_unified`).
            dense: ``[B, D]`` dense values of the numeric fields.
            wide: ``[B]`` the rows' first-order term (:meth:`wide_logits`), added when given.

        Returns:
            Logits ``[B]``.
        """
        logits = self.backbone(unified, dense)
        return logits if wide is None else logits + wide

    def forward(self, batch: Batch, arch: Arch) -> Tensor:
        """Logits ``[B]`` of ``batch`` under ``arch`` (``[B, F]`` per row, or one ``[F]`` path)."""
        return self.forward_from_unified(
            self.unified(batch, arch), batch.dense, self.wide_logits(batch)
        )

    def sizes_of(self, arch: Sequence[int]) -> tuple[int, ...]:
        """Embedding sizes ``(alpha_1..alpha_F)`` of one architecture's candidate indices."""
        return tuple(self.candidate_sizes[int(a)] for a in arch)

    def arch_of(self, sizes: Sequence[int] | Mapping[str, int]) -> tuple[int, ...]:
        """Candidate indices of per-field sizes (a sequence, or a field-name mapping).

        Raises:
            ConfigError: a size that is not a candidate, or fields missing from a mapping.
        """
        seq = resolve_sizes(sizes, self.field_names)
        bad = [s for s in seq if s not in self.candidate_sizes]
        if bad:
            raise ConfigError(
                f"sizes {bad} are not candidates; candidates: {list(self.candidate_sizes)}"
            )
        return tuple(self.candidate_sizes.index(s) for s in seq)


def resolve_sizes(
    sizes: Sequence[int] | Mapping[str, int], field_names: Sequence[str]
) -> tuple[int, ...]:
    """Per-field sizes in feature-map order from a sequence or a ``field -> size`` mapping.

    Raises:
        ConfigError: wrong length, missing/unknown field names, or a negative size.
    """
    if isinstance(sizes, Mapping):
        missing = [n for n in field_names if n not in sizes]
        unknown = sorted(set(sizes) - set(field_names))
        if missing or unknown:
            raise ConfigError(f"sizes mapping: missing fields {missing}, unknown fields {unknown}")
        seq = tuple(sizes[n] for n in field_names)
    else:
        seq = tuple(sizes)
    if len(seq) != len(field_names):
        raise ConfigError(f"sizes {list(seq)}: need one size per field ({len(field_names)})")
    if any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seq):
        raise ConfigError(f"sizes {list(seq)}: every size must be an integer >= 0 (0 = drop)")
    return seq
