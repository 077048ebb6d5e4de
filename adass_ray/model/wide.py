"""The first-order (wide) term and the linear floor built from it.

:class:`FirstOrder` is a one-hot logistic regression over the categorical ids: one scalar per id
of every field (a ``V_f x 1`` table each, stored as one flat ``[sum V_f, 1]`` table), summed over
the fields, plus a bias. Multi-valued fields contribute the mean of their ids' scalars.

Two uses: added to a backbone's logit as the "wide" part of a wide-and-deep model (the supernet
and the stand-alone model take ``model.wide``), and on its own as :class:`LinearModel`, the floor
any embedding model has to beat on the same loader and split. Its table is not an embedding size
the search chooses, so it is not part of ``embedding_params`` (it is part of ``total_params``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adass_ray.data.batch import Batch
from adass_ray.data.feature_map import FeatureMap
from adass_ray.model.unifier import pooled_lookup

#: the wide term's output scale inside a wide-and-deep model: x10 its effective Adam step, so at
#: the network's lr 1e-3 it moves like the floor at its lr 1e-2
WIDE_SCALE = 10.0


class FirstOrder(nn.Module):
    """``sum_f w_f[x_f] + b``: one scalar per id per field.

    Args:
        vocab_sizes: ``V_f`` per field (feature-map order).
        multi_valued: per field, whether it is multi-valued (mean-pooled).
        sparse: sparse gradients for the table (the loop then gives it the lazy Adam).
        scale: the output is ``scale * (sum_f w_f[x_f] + b)``: under Adam this multiplies the
            term's effective learning rate by ``scale`` (a scalar per id needs larger steps than
            the embedding network's default learning rate gives; see :data:`WIDE_SCALE`).

    Shapes: ``forward(ids [B, F_single], multi) -> [B]``.
    """

    offsets: Tensor  # [F_single] first row of each single-valued field in the flat table
    multi_offsets: Tensor  # [F_multi] the same for the multi-valued fields

    def __init__(
        self,
        *,
        vocab_sizes: Sequence[int],
        multi_valued: Sequence[bool],
        sparse: bool = False,
        scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.scale = float(scale)
        starts, row = [], 0
        for v in vocab_sizes:
            starts.append(row)
            row += int(v)
        singles = [s for s, m in zip(starts, multi_valued, strict=True) if not m]
        multis = [s for s, m in zip(starts, multi_valued, strict=True) if m]
        self.register_buffer("offsets", torch.tensor(singles, dtype=torch.long), persistent=False)
        self.register_buffer(
            "multi_offsets", torch.tensor(multis, dtype=torch.long), persistent=False
        )
        # named "tables" so the loop treats it as an embedding table (sparse grads when asked);
        # zero start: the model begins as the backbone alone and the term grows from the data
        self.tables = nn.ParameterDict({"w": nn.Parameter(torch.zeros(row, 1))})
        self.bias = nn.Parameter(torch.zeros(()))
        self.sparse = sparse

    @classmethod
    def from_feature_map(
        cls, fm: FeatureMap, *, sparse: bool = False, scale: float = 1.0
    ) -> FirstOrder:
        """The first-order term over every field of ``fm``."""
        return cls(
            vocab_sizes=fm.vocab_sizes,
            multi_valued=[f.kind == "multi_valued" for f in fm.fields],
            sparse=sparse,
            scale=scale,
        )

    def forward(self, ids: Tensor, multi: Sequence[Tensor]) -> Tensor:
        table = self.tables["w"]
        out = self.bias.expand(ids.shape[0])
        if ids.shape[1]:
            out = out + F.embedding(ids + self.offsets, table, sparse=self.sparse).sum(dim=(1, 2))
        for j, m in enumerate(multi):
            out = out + pooled_lookup(table, m, self.multi_offsets[j], sparse=self.sparse)[:, 0]
        return out if self.scale == 1.0 else out * self.scale


class LinearModel(nn.Module):
    """The linear floor: :class:`FirstOrder` alone (a one-hot logistic regression).

    ``forward(batch) -> [B]`` like the stand-alone model, so the same loop trains and scores it.
    """

    def __init__(self, first_order: FirstOrder) -> None:
        super().__init__()
        self.wide = first_order

    @classmethod
    def from_feature_map(cls, fm: FeatureMap, *, sparse: bool = False) -> LinearModel:
        return cls(FirstOrder.from_feature_map(fm, sparse=sparse))

    def forward(self, batch: Batch) -> Tensor:
        return self.wide(batch.ids, batch.multi)

    def embedding_params(self) -> int:
        """0: the floor has no embedding table the search could size."""
        return 0
