"""The training loop in one process: exact checkpoints, best-epoch weights, non-finite losses."""

from __future__ import annotations

import copy
import io

import pytest
import torch

from adass_ray.data import synthetic
from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.loader import ShardLoader
from adass_ray.errors import NonFiniteLossError
from adass_ray.model.config import ModelConfig
from adass_ray.sampling import SamplerConfig
from adass_ray.train.config import TrainConfig
from adass_ray.train.loop import TrainLoop
from adass_ray.train.task import make_task

# dropout > 0 so the restored run also needs the per-step random state; an adaptive sampler so
# it needs the sampler's state; checkpoints mid-epoch so it needs the loader position
CFG = TrainConfig(
    model=ModelConfig(hidden=(16,), dropout=0.3),
    sampler=SamplerConfig(name="adaptive", warmup_steps=2),
    epochs=2,
    batch_size=100,
    checkpoint_every=3,
    patience=0,
    max_rows=600,
    num_workers=1,
    use_gpu="no",
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # two threads per process on two shared cores is many times slower than one
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn") / "data"
    synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=800, seed=3), out)
    return out


def _loop(data, cfg=CFG, kind="supernet", on_checkpoint=None, loop_cls=TrainLoop):
    fm = FeatureMap.load(data)
    task = make_task(fm, cfg, kind, (4,) * fm.num_fields if kind == "fixed" else None)
    train = ShardLoader(data, fm, split="train", batch_size=cfg.batch_size, seed=cfg.seed,
                        max_rows=cfg.max_rows)
    valid = ShardLoader(data, fm, split="valid", batch_size=4096, shuffle=False,
                        max_rows=cfg.max_rows)
    return loop_cls(task=task, config=cfg, train=train, valid=valid, on_checkpoint=on_checkpoint)


def _roundtrip(state):
    """Through bytes, as a checkpoint file is (and with the safe loader)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _assert_equal(a, b, path="state"):
    """Bit-for-bit equality of nested checkpoint states (tensors with torch.equal)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, path
        assert torch.equal(a, b), f"{path} differs"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{path} keys differ: {set(a) ^ set(b)}"
        for k in set(a) - {"epoch_seconds"}:  # wall-clock time, the one thing allowed to differ
            _assert_equal(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{path} length differs"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_equal(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and a != a:
        assert b != b, path
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def test_resume_from_a_mid_epoch_checkpoint_is_bit_for_bit(data):
    saved = {}

    def keep(state, metrics):
        saved[state["loop"]["global_step"]] = _roundtrip(state)

    clean = _loop(data, on_checkpoint=keep)
    steps_per_epoch = len(clean.train)
    clean.run()
    final = copy.deepcopy(clean.state_dict())
    mid = 3  # a checkpoint inside the first epoch: the loader must skip to the right batch
    assert 0 < mid < steps_per_epoch and saved[mid]["loop"]["step_in_epoch"] == mid
    assert saved[mid]["optimizers"][0]["state"], "no Adam moments in the checkpoint"
    assert saved[mid]["task"]["sampler"], "no sampler state in the checkpoint"

    resumed = _loop(data)
    resumed.load_state_dict(saved[mid])
    # the loaded loop hands back exactly what was saved (weights, moments, sampler, position)
    restored = resumed.state_dict()
    restored["loop"]["resumed_at"] = []
    _assert_equal(saved[mid], _roundtrip(restored))
    assert resumed.state.resumed_at == [mid]
    resumed.run()
    got = resumed.state_dict()
    got["loop"]["resumed_at"] = []
    final["loop"]["resumed_at"] = []
    # weights, optimizer moments, sampler state, best weights, history: all identical
    _assert_equal(final, got)


def test_a_resumed_run_differs_when_the_loader_position_is_lost(data):
    """The check above can fail: restarting the epoch from its first batch changes the weights."""
    saved = {}
    clean = _loop(data, on_checkpoint=lambda s, m: saved.setdefault(
        s["loop"]["global_step"], _roundtrip(s)))
    clean.run()
    state = saved[3]
    state["loop"]["step_in_epoch"] = 0
    wrong = _loop(data)
    wrong.load_state_dict(state)
    wrong.run()
    a, b = clean.task.model.state_dict(), wrong.task.model.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)


class _Scripted(TrainLoop):
    """Validation AUC from a script, so the best epoch is known in advance."""

    script = [0.60, 0.70, 0.65, 0.64, 0.9]

    def evaluate(self, loader, prefix):
        if prefix != "val":
            return super().evaluate(loader, prefix)
        return {f"{prefix}_auc": self.script[self.state.epoch]}


def test_early_stopping_keeps_the_best_epochs_weights(data):
    cfg = TrainConfig(**{**CFG.__dict__, "epochs": 5, "patience": 2, "checkpoint_every": 0})
    at_epoch_end = []
    loop = _loop(data, cfg=cfg, kind="fixed", loop_cls=_Scripted,
                 on_checkpoint=lambda s, m: at_epoch_end.append(copy.deepcopy(s["model"])))
    st = loop.run()
    assert st.stopped and st.epoch == 4 and st.best_epoch == 1  # epochs 2, 3 were worse
    final = loop.task.model.state_dict()
    _assert_equal(at_epoch_end[1], final)  # the best epoch's weights, not the last epoch's
    assert any(not torch.equal(at_epoch_end[3][k], final[k]) for k in final)


class _PoisonAt(TrainLoop):
    """A loss that turns NaN at one step (as an exploding run would)."""

    poison_step = 7

    def __init__(self, **kw):
        super().__init__(**kw)
        inner = self.task.train_step

        def step(batch, **k):
            loss, extra = inner(batch, **k)
            if self.state.global_step == self.poison_step:
                loss = loss * float("nan")
            return loss, extra

        self.task.train_step = step


def test_training_stops_at_the_first_non_finite_loss(data):
    checkpoints = []
    loop = _loop(data, kind="fixed", loop_cls=_PoisonAt,
                 on_checkpoint=lambda s, m: checkpoints.append(s["loop"]["global_step"]))
    with pytest.raises(NonFiniteLossError, match=r"at step 7 .*last good checkpoint is at step 6"):
        loop.run()
    assert checkpoints == [3, 6, 6]  # step 6 ends epoch 0; nothing after the bad step
    assert loop.state.global_step == 7
    assert all(torch.isfinite(p).all() for p in loop.task.model.parameters())


def test_drawing_ahead_trains_bit_for_bit_the_same_and_hands_over(data):
    """The loop gives every step a fresh generator and says which one the next step gets, so a
    sampler drawing ahead (on CUDA; forced here on the CPU) is handed its draws and changes
    nothing."""
    plain = _loop(data)
    plain.run()
    ahead = _loop(data)
    ahead.task.draw_ahead = True
    sampler = ahead.task.sampler
    sampler.draw_ahead()
    take, taken = sampler._ahead.take, []

    def counted(key, generator):
        draws = take(key, generator)
        taken.append(draws is not None)
        return draws

    sampler._ahead.take = counted
    ahead.run()
    assert len(taken) == ahead.state.global_step and sum(taken) >= len(taken) // 2
    a, b = plain.state_dict(), ahead.state_dict()
    _assert_equal(_roundtrip(a), _roundtrip(b))


def test_a_checkpoint_keeps_the_resuming_devices_fused_flag(data):
    """A checkpoint written with fused Adam (CUDA) resumes with this device's choice."""
    writer = _loop(data)
    writer.run()
    saved = _roundtrip(writer.state_dict())
    saved["optimizers"][0]["param_groups"][0]["fused"] = True  # as written on CUDA
    reader = _loop(data)
    reader.load_state_dict(saved)
    assert reader.optimizers[0].param_groups[0]["fused"] is None  # the CPU's default Adam
