"""First-layer folding of a backbone, for scoring many architectures on fixed rows.

Every backbone's first layer (the DNN's first ``Linear``, DeepFM's first-order term and DNN
tower, DCN's deep tower and its rank-one crossings, FM's terms) reads the concatenated field
vectors ``x0 = [u_1 .. u_F]`` through a sum of per-field terms ``g_f(u_f)``. With every
candidate's unified output ``u_{f,k}`` of a validation row known, ``g_f(u_{f,k})`` can be
stored once per (row, field, candidate); an architecture's first layer is then a gather and a
sum over the fields (plus a bias), and only the rest of the network runs per architecture.

A :class:`Fold` holds the per-field map (:meth:`Fold.contributions`), the bias and the rest
(:meth:`Fold.head`). The result equals the plain forward up to float reassociation of the
first layer's sum. :func:`fold_backbone` returns ``None`` where nothing is folded (DLRM: its
top MLP reads pairwise dot products, which are not a sum of per-field terms; an unknown
module); the caller then runs the backbone on the gathered field vectors.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from adass_ray.model.backbones import DCN, DNN, FM, MLP, DeepFM


def _blocks(weight: Tensor, nf: int, d: int) -> Tensor:
    """A linear map ``[C, F*d]`` of the flattened fields as per-field blocks ``[F, d, C]``."""
    return weight.reshape(weight.shape[0], nf, d).permute(1, 2, 0)


def _linear_terms(u: Tensor, blocks: Tensor) -> Tensor:
    """``[n, F, K, d] x [F, d, C] -> [n, F, K, C]``: each field's block applied to its vectors."""
    n, nf, nk, d = u.shape
    y = torch.bmm(u.permute(1, 0, 2, 3).reshape(nf, n * nk, d), blocks)  # [F, n*K, C]
    return y.view(nf, n, nk, -1).permute(1, 0, 2, 3)


class Fold:
    """A backbone split into summed per-field terms and the rest.

    Attributes:
        width: ``C``, columns of a per-field term (and of the summed pre-activation).
        needs_fields: :meth:`head` also reads the gathered field vectors ``[R, F, d]``.
    """

    width: int
    needs_fields: bool = False

    def __init__(self, *, nf: int, d: int) -> None:
        self.nf, self.d = nf, d
        self._parts: list[tuple[Tensor, Tensor]] = []  # (blocks [F, d, c], bias [c]) in order

    def _add_linear(self, weight: Tensor, bias: Tensor | None) -> slice:
        """Append a linear map ``[c, F*d]`` of ``x0``; returns its column slice."""
        lo = sum(b.shape[-1] for b, _ in self._parts)
        c = weight.shape[0]
        self._parts.append((_blocks(weight.detach(), self.nf, self.d),
                            bias.detach() if bias is not None else weight.new_zeros(c)))
        self.width = lo + c
        return slice(lo, lo + c)

    @property
    def bias(self) -> Tensor:
        """``[C]`` added once to the summed terms."""
        return torch.cat([b for _, b in self._parts])

    def contributions(self, u: Tensor) -> Tensor:
        """Per-field terms ``[n, F, K, C]`` of all candidate outputs ``u [n, F, K, d]``."""
        return torch.cat([_linear_terms(u, blocks) for blocks, _ in self._parts], dim=-1)

    def head(self, s: Tensor, fields: Tensor | None) -> Tensor:  # pragma: no cover - interface
        """Logits ``[R]`` from the summed terms plus bias ``s [R, C]`` (and ``fields``)."""
        raise NotImplementedError


def _first(mlp: nn.Module) -> nn.Linear:
    """The first ``Linear`` of an :class:`MLP` (the layer that folds)."""
    layer = next(iter(mlp.children()))
    assert isinstance(layer, nn.Linear)
    return layer


def _weight(layer: nn.Module) -> Tensor:
    assert isinstance(layer, nn.Linear)
    return layer.weight.detach()


def _tower(mlp: MLP, x: Tensor) -> Tensor:
    """The layers of ``mlp`` after its first ``Linear`` (that one is folded)."""
    for layer in list(mlp)[1:]:
        x = layer(x)
    return x


class _DNNFold(Fold):
    def __init__(self, net: DNN, *, nf: int, d: int) -> None:
        super().__init__(nf=nf, d=d)
        first = _first(net.mlp)
        self.mlp = net.mlp
        self._add_linear(first.weight, first.bias)

    def head(self, s: Tensor, fields: Tensor | None) -> Tensor:
        return _tower(self.mlp, s).squeeze(1)


class _FMFold(Fold):
    """Columns ``[u_f (d), w_f . u_f - |u_f|^2 / 2 (1)]``; head ``|sum u|^2 / 2 + scalar``."""

    def __init__(self, net: FM, *, nf: int, d: int) -> None:
        super().__init__(nf=nf, d=d)
        # every field's block is the identity, so the columns sum to u_1 + ... + u_F
        self._add_linear(torch.eye(d, device=net.linear.weight.device).repeat(1, nf), None)
        self._add_linear(net.linear.weight, net.linear.bias)

    def contributions(self, u: Tensor) -> Tensor:
        out = super().contributions(u)
        out[..., self.d] -= 0.5 * u.pow(2).sum(-1)  # the per-field square of the FM identity
        return out

    def head(self, s: Tensor, fields: Tensor | None) -> Tensor:
        return 0.5 * s[:, : self.d].pow(2).sum(1) + s[:, self.d]


class _DeepFMFold(_FMFold):
    def __init__(self, net: DeepFM, *, nf: int, d: int) -> None:
        super().__init__(net.fm, nf=nf, d=d)
        first = _first(net.dnn.mlp)
        self.mlp = net.dnn.mlp
        self.deep = self._add_linear(first.weight, first.bias)

    def head(self, s: Tensor, fields: Tensor | None) -> Tensor:
        return super().head(s, fields) + _tower(self.mlp, s[:, self.deep]).squeeze(1)


class _DCNFold(Fold):
    """DCN: the deep tower's first layer folds; v1 crossings fold entirely, v2 ones read x0.

    v1 keeps ``x_l = x0 * p_l + q_l`` with a per-row scalar ``p_l`` and a constant vector
    ``q_l`` (``p_0 = 1``, ``q_0 = 0``): ``t_l = x_l . w_l = p_l (x0 . w_l) + q_l . w_l``,
    ``p_{l+1} = p_l + t_l``, ``q_{l+1} = q_l + b_l``, so the cross output's share of the logit
    is ``p_L (x0 . h) + q_L . h`` and only the scalars ``x0 . w_l`` and ``x0 . h`` are folded.
    """

    def __init__(self, net: DCN, *, nf: int, d: int) -> None:
        super().__init__(nf=nf, d=d)
        width = nf * d
        self.net = net
        h = net.head.weight.detach()[0]
        self.h_cross, self.h_deep = h[:width], h[width:]
        if len(net.deep):
            first = _first(net.deep)
            self.deep = self._add_linear(first.weight, first.bias)
        else:  # no tower: the deep output is x0, its share of the logit is one scalar
            self.deep = self._add_linear(self.h_deep.unsqueeze(0), None)
        self.full_rank = net.cross.full_rank
        self.needs_fields = self.full_rank
        if not self.full_rank:
            w = torch.stack([_weight(layer)[0] for layer in net.cross.layers] + [self.h_cross])
            self.cross = self._add_linear(w, None)
            q, qw = torch.zeros_like(self.h_cross), []
            for layer, b in zip(net.cross.layers, net.cross.biases, strict=True):
                qw.append(float(q @ _weight(layer)[0]))
                q = q + b.detach()
            self.qw, self.qh = qw, float(q @ self.h_cross)

    def head(self, s: Tensor, fields: Tensor | None) -> Tensor:
        if len(self.net.deep):
            deep = _tower(self.net.deep, s[:, self.deep]) @ self.h_deep
        else:
            deep = s[:, self.deep].squeeze(1)
        if self.full_rank:
            assert fields is not None
            cross = self.net.cross(fields.flatten(1)) @ self.h_cross
        else:
            c = s[:, self.cross]
            p = torch.ones_like(c[:, 0])
            for i, qw in enumerate(self.qw):
                p = p + (p * c[:, i] + qw)
            cross = p * c[:, -1] + self.qh
        return cross + deep + self.net.head.bias


_FOLDS: dict[type, Callable[..., Fold]] = {
    DNN: _DNNFold, FM: _FMFold, DeepFM: _DeepFMFold, DCN: _DCNFold,
}


def fold_backbone(backbone: nn.Module, *, num_fields: int, d: int) -> Fold | None:
    """The fold of ``backbone`` (the module, not a copy: keep its weights frozen), or ``None``
    where its first layer is not a sum of per-field terms (DLRM, an unknown module)."""
    make = _FOLDS.get(type(backbone))
    return make(backbone, nf=num_fields, d=d) if make is not None else None
