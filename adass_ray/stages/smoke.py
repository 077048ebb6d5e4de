"""Every smoke-test and quick preset in one place: what ``--smoke-test`` and ``--quick`` mean.

Smoke presets exercise the code path in seconds on tiny synthetic data; they say nothing about
quality. Quick presets (``report --quick``) check the harness end to end in CI.
"""

from __future__ import annotations

from pathlib import Path

from adass_ray.data.feature_map import FEATURE_MAP_FILE

#: TrainConfig overrides of every ``--smoke-test`` training run.
TRAIN = [
    "epochs=1",
    "max_rows=2000",
    "batch_size=256",
    "model.hidden=[32]",
    "sampler.warmup_steps=2",
    "checkpoint_every=4",
]
#: SearchConfig overrides of ``search --smoke-test``, ``sweep --smoke-test`` and
#: ``run --smoke-test``.
SEARCH = ["iterations=5", "archs_per_iter=8", "val_rows=500"]
SWEEP = ["iterations=4", "archs_per_iter=8", "val_rows=500"]
PIPELINE_SEARCH = ["iterations=3", "archs_per_iter=6", "val_rows=300"]
#: ``run --smoke-test``: rows of synthetic data and at most this many retraining seeds.
PIPELINE_ROWS = 3000
PIPELINE_SEEDS = 2
#: ``sweep --smoke-test`` without explicit λs / budgets: 3 trials over the budget.
SWEEP_GRID = ("0.01", "0.4,0.6,0.8")
#: ``report --quick``: CI-sized training and searches.
QUICK_TRAIN = ["epochs=2", "patience=0"]
QUICK_SEARCH = ["iterations=10", "archs_per_iter=8", "val_rows=2000"]


def smoke_data(out: Path) -> Path:
    """Tiny synthetic data for ``--smoke-test`` runs (made once, beside the outputs)."""
    from adass_ray.data import synthetic

    data = out.parent / f".{out.name}-smoke-data"
    if not (data / FEATURE_MAP_FILE).is_file():
        spec = synthetic.SyntheticSpec.preset("tiny", rows=3000, seed=0)
        synthetic.generate_dataset(spec, data, overwrite=True)
    return data


def smoke_supernet(out: Path, verbose: bool) -> tuple[Path, Path]:
    """Tiny data and a tiny supernet beside ``out`` (made once) for ``--smoke-test`` runs."""
    from adass_ray import configio
    from adass_ray.stages.train import train
    from adass_ray.tracking import TrackingSpec
    from adass_ray.train.config import TrainConfig

    data = smoke_data(out)
    supernet = out.parent / f".{out.name}-smoke-supernet"
    if not (supernet / "model.pt").is_file():
        train(
            data=data,
            out=supernet,
            cfg=configio.load(TrainConfig, None, TRAIN),
            kind="supernet",
            resume=(supernet / ".ray").exists(),
            tracking=TrackingSpec(enabled=False),
            verbose=verbose,
        )
    return data, supernet
