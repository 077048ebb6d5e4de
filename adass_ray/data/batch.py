"""The batch every model, sampler and loop consumes."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Batch:
    """One mini-batch of a prepared dataset.

    Attributes:
        ids: ``[B, F_single]`` int64 ids of the single-valued fields (categorical and bucketized
            numeric), in feature-map order restricted to those fields.
        multi: one ``[B, L_f]`` int64 tensor per multi-valued field, in feature-map order, padded
            with ``-1`` (id 0 is the OOV id, not padding).
        dense: ``[B, D]`` float32 dense values of the numeric fields (``D`` may be 0).
        label: ``[B]`` float32 0/1 labels.
    """

    ids: torch.Tensor
    multi: tuple[torch.Tensor, ...]
    dense: torch.Tensor
    label: torch.Tensor

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> Batch:
        return Batch(
            ids=self.ids.to(device, non_blocking=non_blocking),
            multi=tuple(m.to(device, non_blocking=non_blocking) for m in self.multi),
            dense=self.dense.to(device, non_blocking=non_blocking),
            label=self.label.to(device, non_blocking=non_blocking),
        )

    def pin_memory(self) -> Batch:
        """A page-locked copy (CUDA needed), for a non-blocking copy to a GPU."""
        return Batch(ids=self.ids.pin_memory(), multi=tuple(m.pin_memory() for m in self.multi),
                     dense=self.dense.pin_memory(), label=self.label.pin_memory())

    def slice(self, start: int, stop: int) -> Batch:
        return Batch(
            ids=self.ids[start:stop],
            multi=tuple(m[start:stop] for m in self.multi),
            dense=self.dense[start:stop],
            label=self.label[start:stop],
        )
