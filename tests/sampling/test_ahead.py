"""Drawing the next step's random numbers ahead gives the same paths as drawing them in the step."""

from __future__ import annotations

import torch

from adass_ray.data.batch import Batch
from adass_ray.data.feature_map import FeatureMap, FieldSpec
from adass_ray.model.config import ModelConfig
from adass_ray.sampling import SamplerConfig
from adass_ray.sampling.adaptive import AdaptiveSampler, inverse_cdf
from adass_ray.sampling.ahead import DrawAhead
from adass_ray.train.config import TrainConfig
from adass_ray.train.task import SupernetTask, make_task

SIZES, VOCAB = (0, 1, 2, 4, 8, 16), (50, 7, 1000, 3, 120, 9, 30000)


def _run(ahead: bool) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], int]:
    """The paths and sources of a run, and how many steps took draws made ahead."""
    sampler = AdaptiveSampler(candidate_sizes=SIZES, vocab_sizes=VOCAB, warmup_steps=2)
    taken = 0
    if ahead:
        sampler.draw_ahead()
        assert sampler._ahead is not None
        take = sampler._ahead.take

        def counted(key: int, generator: torch.Generator) -> object:
            nonlocal taken
            draws = take(key, generator)
            taken += draws is not None
            return draws

        sampler._ahead.take = counted  # type: ignore[method-assign]
    g, stats = torch.Generator().manual_seed(3), torch.Generator().manual_seed(1)
    out = []
    for step, rows in enumerate([512, 512, 512, 300, 512, 512, 64, 64, 512, 512, 512]):
        if step == 5:
            g.manual_seed(9)  # a state loaded into the generator between steps
        if step == 7:
            torch.rand(3, generator=g)  # something else draws from it between steps
        arch, source = sampler.sample_with_source(rows, generator=g)
        out.append((arch, source))
        # statistics that move the ES distribution and FS shares after the warm-up
        sampler.observe(arch, torch.rand(rows, generator=stats), torch.rand(7, generator=stats))
    out.append((torch.rand(4, generator=g), torch.empty(0)))  # the generator ends where it would
    return out, taken


def test_same_paths_with_and_without_drawing_ahead() -> None:
    (plain, _), (ahead, taken) = _run(False), _run(True)
    # steps 1, 2, 9 and 10 follow a step of the same size with nothing between them
    assert taken == 4
    assert len(plain) == len(ahead)
    for (a0, s0), (a1, s1) in zip(plain, ahead, strict=True):
        assert torch.equal(a0, a1) and torch.equal(s0, s1)


def test_draw_ahead_hands_over_only_a_matching_key_and_state() -> None:
    ahead: DrawAhead[torch.Tensor] = DrawAhead(lambda n, g: torch.rand(n, generator=g))
    g = torch.Generator().manual_seed(0)
    assert ahead.take(4, g) is None  # nothing started
    ahead.start(4, g)
    assert ahead.take(5, g) is None  # another key: dropped, the generator untouched
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(0).get_state())
    ahead.start(4, g)
    drawn = ahead.take(4, g)
    ref = torch.Generator().manual_seed(0)
    assert drawn is not None and torch.equal(drawn, torch.rand(4, generator=ref))
    assert torch.equal(g.get_state(), ref.get_state())  # advanced past the draws
    ahead.start(4, g)
    torch.rand(1, generator=g)
    assert ahead.take(4, g) is None  # the generator moved meanwhile


def test_a_cpu_training_step_does_not_draw_ahead() -> None:
    fm = FeatureMap(name="t", label="label", candidate_sizes=(1, 2, 4),
                    fields=tuple(FieldSpec(name=f"f{i}", kind="categorical", vocab_size=v)
                                 for i, v in enumerate((20, 5, 300))))
    cfg = TrainConfig(model=ModelConfig(d=4, hidden=(8,), candidate_sizes=(1, 2, 4)),
                      sampler=SamplerConfig(name="adaptive"))
    task = make_task(fm, cfg, "supernet")
    assert isinstance(task, SupernetTask) and isinstance(task.sampler, AdaptiveSampler)
    batch = Batch(ids=torch.randint(0, 5, (64, 3)), multi=(), dense=torch.zeros(64, 0),
                  label=(torch.rand(64) < 0.3).float())
    loss, _ = task.train_step(batch, generator=torch.Generator().manual_seed(0), reduce=None)
    loss.backward()
    task.after_backward(None)
    assert task.sampler._ahead is None


def test_inverse_cdf_is_searchsorted() -> None:
    g = torch.Generator().manual_seed(0)
    for k in (1, 2, 5, 300):
        p = torch.rand(4, k, generator=g, dtype=torch.float64)
        cdf = (p / p.sum(1, keepdim=True)).cumsum(1)[:, :-1].contiguous()
        u = torch.rand(4, 500, generator=g, dtype=torch.float64)
        u[:, : k - 1] = cdf[:, :500]  # exact ties with the cut points
        assert torch.equal(inverse_cdf(cdf, u), torch.searchsorted(cdf, u, right=True))
