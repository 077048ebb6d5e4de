"""Search controllers (DESIGN.md §2.3): policies over architectures (tuples of candidate
indices, one per field) trained by REINFORCE plus any differentiable term of the policy's
marginals (the exact expected-cost term of :mod:`adass_ray.search.penalty`).

Optimiser: Adam with β1 = 0 by default (TuNAS: momentum on a noisy policy gradient only
carries stale directions) and a linear learning-rate ramp over the first ``lr_ramp`` updates.
Each controller samples with its own seeded ``torch.Generator`` kept in ``state_dict()``, so a
restored one proposes exactly what the original would have.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from adass_ray.errors import ConfigError

Archs = Sequence[Sequence[int]]
Pick = Callable[[int, Tensor], Tensor]  # (field f, logits [n, K]) -> choices [n]
Penalty = Callable[[Tensor], Tensor]  # differentiable marginals [F, K] -> scalar loss


@runtime_checkable
class Controller(Protocol):
    """A policy over architectures; ``update`` takes advantages ``[N, F]`` (or ``[N]``)."""

    num_fields: int
    num_candidates: int
    entropy_weight: float
    updates: int

    def propose(self, n: int) -> list[tuple[int, ...]]: ...
    def update(self, archs: Archs, advantages: Tensor | Sequence[Any], *,
               penalty: Penalty | None = None) -> None: ...
    def policy_terms(self, archs: Archs) -> tuple[Tensor, Tensor]: ...
    def marginals(self) -> Tensor: ...
    def apply(self, loss: Tensor) -> None: ...
    def current_lr(self) -> float: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...
    def probs(self) -> Tensor: ...
    def argmax(self) -> tuple[int, ...]: ...
    def entropy(self) -> float: ...


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _check_common(num_fields: int, num_candidates: int, lr: float, entropy_weight: float) -> None:
    _check(num_fields >= 1 and num_candidates >= 1,
           f"controller: num_fields={num_fields}, num_candidates={num_candidates}; need >= 1")
    _check(lr > 0 and entropy_weight >= 0 and math.isfinite(lr + entropy_weight),
           f"controller: lr={lr}, entropy_weight={entropy_weight}; need lr > 0, weight >= 0")


def _check_optim(betas: tuple[float, float], lr_ramp: int) -> None:
    _check(len(betas) == 2 and 0 <= betas[0] < 1 and 0 <= betas[1] < 1 and lr_ramp >= 0,
           f"controller: betas={tuple(betas)}, lr_ramp={lr_ramp}; need betas in [0, 1), ramp >= 0")


def _arch_tensor(archs: Archs, nf: int, nk: int) -> Tensor:
    """``LongTensor [N, F]`` of validated architectures (raises ConfigError)."""
    rows = [tuple(int(a) for a in arch) for arch in archs]
    bad = [r for r in rows if len(r) != nf or any(not 0 <= a < nk for a in r)]
    _check(bool(rows) and not bad,
           f"architectures {bad[:1]} of {len(rows)}: need >= 1, each {nf} indices in 0..{nk - 1}")
    return torch.tensor(rows, dtype=torch.long)


def _advantages(advantages: Tensor | Sequence[Any], n: int, nf: int) -> Tensor:
    """Advantages as ``[N, F]`` float32; a ``[N]`` input is broadcast to every field."""
    adv = torch.as_tensor(advantages, dtype=torch.float32).detach().cpu()
    if adv.dim() == 1:
        adv = adv[:, None].expand(adv.shape[0], nf)
    _check(adv.shape == (n, nf) and bool(adv.isfinite().all()),
           f"advantages of shape {tuple(adv.shape)}: need finite [{n}] or [{n}, {nf}]")
    return adv


def _entropy(logits: Tensor) -> Tensor:
    """Entropy of ``softmax`` over the last dim: ``[..., K] -> [...]``."""
    return -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1)


class FactorizedPolicy(nn.Module):
    """Independent per-field logits ``theta [F, K]``: ``pi(alpha) = prod_f softmax(theta_f)``."""

    def __init__(self, theta: Tensor) -> None:
        super().__init__()
        self.num_fields, self.num_candidates = int(theta.shape[0]), int(theta.shape[1])
        self.theta = nn.Parameter(theta)

    def rollout(self, n: int, pick: Pick) -> tuple[Tensor, Tensor]:
        """``(logits [n, F, K], choices [n, F])``; ``pick`` chooses each field's candidates."""
        logits = self.theta.expand(n, self.num_fields, self.num_candidates)
        return logits, torch.stack([pick(f, logits[:, f]) for f in range(self.num_fields)], 1)


class LSTMPolicy(nn.Module):
    """An LSTM cell stepping over fields; step f reads ``[field emb f, emb of choice f-1]``.

    A start token stands in for the choice before field 0; each field's own linear head maps
    the hidden state to ``K`` logits and starts at zero, so the initial policy is uniform.
    """

    def __init__(self, num_fields: int, num_candidates: int, *, hidden: int, embed: int) -> None:
        super().__init__()
        self.num_fields, self.num_candidates = num_fields, num_candidates
        self.field = nn.Embedding(num_fields, embed)
        self.choice = nn.Embedding(num_candidates + 1, embed)  # index K = start token
        self.cell = nn.LSTMCell(2 * embed, hidden)
        self.head_weight = nn.Parameter(torch.zeros(num_fields, hidden, num_candidates))
        self.head_bias = nn.Parameter(torch.zeros(num_fields, num_candidates))

    def rollout(self, n: int, pick: Pick) -> tuple[Tensor, Tensor]:
        """``(logits [n, F, K], choices [n, F])``; step f+1 is fed ``pick``'s choice at f."""
        prev = torch.full((n,), self.num_candidates, dtype=torch.long)
        state: tuple[Tensor, Tensor] | None = None
        logits, choices = [], []
        for f in range(self.num_fields):
            state = self.cell(torch.cat([self.field.weight[f].expand(n, -1), self.choice(prev)], 1),
                              state)
            logits.append(torch.addmm(self.head_bias[f], state[0], self.head_weight[f]))
            prev = pick(f, logits[-1])
            choices.append(prev)
        return torch.stack(logits, 1), torch.stack(choices, 1)


class PolicyController:
    """REINFORCE with Adam on a policy module (:class:`FactorizedPolicy`, :class:`LSTMPolicy`).

    ``probs``, ``argmax``, ``entropy`` and ``marginals`` follow the greedy path (each field
    conditioned on the previous fields' argmax), which for the factorised policy is simply its
    marginals; for the LSTM they are an approximation of the true marginals (the expected-cost
    term built on them is then exact only along that path).

    Args:
        policy: the policy; lr: Adam learning rate; entropy_weight: bonus weight ``w``;
            seed: seed of the sampling generator; betas: Adam's (β1, β2);
            lr_ramp: updates over which the learning rate rises linearly to ``lr`` (0: none).
    Raises:
        ConfigError: non-positive sizes or lr, negative entropy weight, bad betas or ramp.
    """

    kind = "policy"

    def __init__(self, policy: FactorizedPolicy | LSTMPolicy, *, lr: float, entropy_weight: float,
                 seed: int, betas: tuple[float, float] = (0.0, 0.999), lr_ramp: int = 0) -> None:
        self.num_fields, self.num_candidates = policy.num_fields, policy.num_candidates
        _check_common(self.num_fields, self.num_candidates, lr, entropy_weight)
        _check_optim(betas, lr_ramp)
        self.policy, self.entropy_weight = policy, float(entropy_weight)
        self.lr, self.lr_ramp, self.updates = float(lr), int(lr_ramp), 0
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=lr,
                                          betas=(float(betas[0]), float(betas[1])))
        self.generator = torch.Generator().manual_seed(int(seed))

    def _greedy(self) -> Tensor:  # logits [F, K] along the greedy path (differentiable)
        return self.policy.rollout(1, lambda _f, z: z.detach().argmax(-1))[0][0]

    def propose(self, n: int) -> list[tuple[int, ...]]:
        """Sample ``n`` architectures (independently, with replacement)."""
        _check(n >= 1, f"propose(n={n}): need n >= 1")

        def sample(_f: int, z: Tensor) -> Tensor:
            return torch.multinomial(torch.softmax(z, -1), 1, generator=self.generator)[:, 0]
        with torch.no_grad():
            return [tuple(row) for row in self.policy.rollout(n, sample)[1].tolist()]

    def policy_terms(self, archs: Archs) -> tuple[Tensor, Tensor]:
        """Differentiable ``(log pi per field [N, F], mean summed entropy [])`` of ``archs``.

        Raises:
            ConfigError: malformed or empty architectures.
        """
        a = _arch_tensor(archs, self.num_fields, self.num_candidates)
        logits, _ = self.policy.rollout(a.shape[0], lambda f, _z: a[:, f])  # teacher-forced
        chosen = torch.log_softmax(logits, -1).gather(2, a[:, :, None])[:, :, 0]
        return chosen, _entropy(logits).sum(1).mean()

    def marginals(self) -> Tensor:
        """Differentiable per-field probabilities ``[F, K]`` (greedy path; see the class)."""
        return torch.softmax(self._greedy(), -1)

    def current_lr(self) -> float:
        """The learning rate the next :meth:`apply` uses (the ramp's value)."""
        if self.lr_ramp <= 0:
            return self.lr
        return self.lr * min(1.0, (self.updates + 1) / self.lr_ramp)

    def apply(self, loss: Tensor) -> None:
        """One Adam step that lowers ``loss`` (built from :meth:`policy_terms` / marginals)."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.current_lr()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.updates += 1

    def update(self, archs: Archs, advantages: Tensor | Sequence[Any], *,
               penalty: Penalty | None = None) -> None:
        """One step on ``-mean_n sum_f A[n,f] log pi_f(alpha_nf) - w H + penalty(marginals)``.

        Args:
            archs: ``N`` architectures (the ones credited).
            advantages: ``[N, F]`` per-field advantages, or ``[N]`` shared by every field.
            penalty: optional differentiable loss of the marginals ``[F, K]``.
        Raises:
            ConfigError: malformed or empty architectures, or malformed advantages.
        """
        chosen, entropy = self.policy_terms(archs)
        adv = _advantages(advantages, chosen.shape[0], self.num_fields)
        loss = -(adv * chosen).sum(1).mean() - self.entropy_weight * entropy
        if penalty is not None:
            loss = loss + penalty(self.marginals()).to(loss.dtype)
        self.apply(loss)

    def probs(self) -> Tensor:
        """Per-field probabilities ``[F, K]`` (along the greedy path), detached."""
        with torch.no_grad():
            return torch.softmax(self._greedy(), -1)

    def argmax(self) -> tuple[int, ...]:
        """The most probable architecture (greedy path)."""
        with torch.no_grad():
            return tuple(self._greedy().argmax(-1).tolist())

    def entropy(self) -> float:
        """Sum of the per-field entropies along the greedy path, in nats."""
        with torch.no_grad():
            return float(_entropy(self._greedy()).sum())

    def state_dict(self) -> dict[str, Any]:
        """Parameters, optimizer moments, the update count and the sampling generator's state."""
        return {"kind": self.kind, "num_fields": self.num_fields,
                "num_candidates": self.num_candidates,
                "policy": {k: v.clone() for k, v in self.policy.state_dict().items()},
                "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "generator": self.generator.get_state(), "updates": self.updates}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` (ConfigError for a state of another kind or shape)."""
        got = (state.get("kind"), state.get("num_fields"), state.get("num_candidates"))
        want = (self.kind, self.num_fields, self.num_candidates)
        _check(got == want, f"controller state (kind, fields, candidates) {got}; this is {want}")
        try:
            self.policy.load_state_dict(state["policy"])
        except RuntimeError as e:  # e.g. another LSTM width
            raise ConfigError(f"controller state does not fit: {str(e).splitlines()[0]}") from e
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.generator.set_state(torch.as_tensor(state["generator"], dtype=torch.uint8))
        self.updates = int(state.get("updates", 0))


class FactorizedController(PolicyController):
    """``pi(alpha) = prod_f softmax(theta_f)`` under REINFORCE (see :class:`PolicyController`).

    Args:
        num_fields, num_candidates: ``F``, ``K``; lr: Adam learning rate on ``theta``.
        entropy_weight: weight of the entropy bonus ``sum_f H(softmax theta_f)``.
        seed: sampling seed; init_logits: initial ``theta [F, K]`` (default zeros: uniform).
        betas, lr_ramp: Adam's betas and the learning-rate ramp (see :class:`PolicyController`).
    Raises:
        ConfigError: non-positive sizes or lr, negative entropy weight, bad ``init_logits``,
            betas or ramp.
    """

    kind = "factorized"

    def __init__(self, num_fields: int, num_candidates: int, *, lr: float = 0.05,
                 entropy_weight: float = 1e-3, seed: int = 0,
                 init_logits: Tensor | Sequence[Sequence[float]] | None = None,
                 betas: tuple[float, float] = (0.0, 0.999), lr_ramp: int = 0) -> None:
        _check_common(num_fields, num_candidates, lr, entropy_weight)
        theta = torch.zeros(num_fields, num_candidates) if init_logits is None else (
            torch.as_tensor(init_logits, dtype=torch.float32).detach().clone())
        _check(theta.shape == (num_fields, num_candidates) and bool(theta.isfinite().all()),
               f"init_logits {tuple(theta.shape)}: need finite [{num_fields}, {num_candidates}]")
        super().__init__(FactorizedPolicy(theta), lr=lr, entropy_weight=entropy_weight, seed=seed,
                         betas=betas, lr_ramp=lr_ramp)


class LSTMController(PolicyController):
    """An autoregressive :class:`LSTMPolicy` under REINFORCE on its per-step log-probs.

    Args:
        num_fields, num_candidates: ``F``, ``K``; hidden: LSTM width; embed: embedding width.
        lr: Adam learning rate; entropy_weight: weight of the per-step entropy bonus.
        seed: seeds the initial weights (not touching the global RNG) and the sampler.
        betas, lr_ramp: Adam's betas and the learning-rate ramp (see :class:`PolicyController`).
    Raises:
        ConfigError: non-positive sizes, widths or lr, negative entropy weight, bad betas/ramp.
    """

    kind = "lstm"

    def __init__(self, num_fields: int, num_candidates: int, *, hidden: int = 32,
                 embed: int = 16, lr: float = 0.02, entropy_weight: float = 1e-3,
                 seed: int = 0, betas: tuple[float, float] = (0.0, 0.999),
                 lr_ramp: int = 0) -> None:
        _check_common(num_fields, num_candidates, lr, entropy_weight)
        _check(hidden >= 1 and embed >= 1, f"lstm controller: hidden={hidden}, embed={embed}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            policy = LSTMPolicy(num_fields, num_candidates, hidden=hidden, embed=embed)
        super().__init__(policy, lr=lr, entropy_weight=entropy_weight, seed=seed, betas=betas,
                         lr_ramp=lr_ramp)


CONTROLLERS: dict[str, type[PolicyController]] = {"factorized": FactorizedController,
                                                  "lstm": LSTMController}


def build_controller(name: str = "factorized", **kw: Any) -> Controller:
    """The controller ``name`` (``"factorized"`` or ``"lstm"``) built with ``kw``.
    Raises:
        ConfigError: unknown name, unknown or missing argument, or a bad constant.
    """
    cls = CONTROLLERS.get(str(name).lower())
    if cls is None:
        raise ConfigError(f"unknown controller {name!r}; expected one of {sorted(CONTROLLERS)}")
    try:
        return cls(**kw)
    except TypeError as e:  # an unknown or missing option
        raise ConfigError(f"controller {name!r}: {e}") from e
