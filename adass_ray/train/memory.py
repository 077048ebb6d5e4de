"""Memory planned before it is spent: what one training worker will hold, from the feature map.

Data-parallel training keeps a full replica per worker, so the figure is per worker and does not
shrink with more workers. Per worker, in float32 (4 bytes a number), with ``T`` the table
parameters and ``N`` the rest of the network (unifiers, LayerNorms, backbone):

* **parameters** ``T + N``. Supernet tables: ``sum_f V_f * sum_s s`` (``separate`` layout) or
  ``sum_f V_f * max s`` (``nested``); a stand-alone model: ``sum_f V_f * s_f``.
* **gradients**: ``T + N`` with dense tables; with ``model.sparse`` only ``N`` plus the rows a
  step touches.
* **optimizer**: Adam and SparseAdam both keep two moments of every parameter: ``2 (T + N)``.
* **best-epoch copy**: the loop keeps the best validation epoch's weights: ``T + N``.
* **model file**: rank 0 serializes the model through a byte buffer at the end: ``2 (T + N)``
  at that moment (the moments are still alive then).
* **data**: the worker's train slice and the validation/test rows as int32 ids + float32 dense
  values and labels.
* **activations**: a step's batch (and an evaluation batch), estimated from widths.
* **runtime**: what a training process holds beyond an idle one with torch imported (allocator
  pools, thread pools, parquet reading): :data:`RUNTIME`, measured with
  ``bench/memory_model.py`` on a small model.

:func:`plan_memory` computes it without building tables; :func:`check_fits` refuses a run that
will not fit in one line naming the figure and the ways out. The process itself (Python, torch,
Ray) comes on top; :data:`PROCESS_BASE` is a typical figure for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from adass_ray.data.feature_map import FeatureMap
from adass_ray.errors import ConfigError
from adass_ray.train.config import TrainConfig

FLOAT = 4
EVAL_BATCH = 16_384
# resident memory of an idle worker process with torch imported (not part of the plan's figure)
PROCESS_BASE = 400 << 20
GIB = 1 << 30
# a training process's memory beyond an idle process with torch imported, whatever the model
# (bench/memory_model.py: about 0.12-0.16 GiB when the tables are negligible)
RUNTIME = 128 << 20


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes one worker holds, by part (see the module docstring).

    Attributes:
        kind: ``supernet`` or ``fixed``.
        workers: data-parallel workers (each holds all of this).
        sparse: sparse table gradients (SparseAdam) or dense.
        table_params, network_params: parameter counts.
        parts: bytes per worker by part, in the order printed.
    """

    kind: str
    workers: int
    sparse: bool
    table_params: int
    network_params: int
    parts: tuple[tuple[str, int], ...]

    @property
    def per_worker(self) -> int:
        """Peak bytes one worker needs (the process's own base not included)."""
        return sum(b for _, b in self.parts)

    def summary(self) -> str:
        """One line: the total per worker and its largest parts."""
        big = [(name, b) for name, b in self.parts if b >= self.per_worker / 50]
        shown = ", ".join(f"{name} {_gib(b)}" for name, b in big)
        return (
            f"{self.kind} memory per worker ≈ {_gib(self.per_worker)} ({shown}; "
            f"{self.table_params:,} table + {self.network_params:,} network params, "
            f"{'sparse' if self.sparse else 'dense'} table optimizer, "
            f"{self.workers} worker{'s' if self.workers != 1 else ''} × full replica)"
        )

    def table(self) -> list[str]:
        """The parts, one per line (for ``--dry-run``)."""
        rows = [f"  {name:<16} {_gib(b):>10}" for name, b in self.parts]
        rows.append(f"  {'total / worker':<16} {_gib(self.per_worker):>10}")
        rows.append(f"  {'all workers':<16} {_gib(self.per_worker * self.workers):>10}")
        return rows


def plan_memory(
    fm: FeatureMap, cfg: TrainConfig, kind: str, sizes: tuple[int, ...] | None = None
) -> MemoryPlan:
    """The memory one worker of this run needs (no tables are built).

    Raises:
        ConfigError: a fixed model without ``sizes``, or sizes that do not match the fields.
    """
    from adass_ray.model.backbones import build_backbone

    m = cfg.model
    vocab = fm.vocab_sizes
    nf, d = fm.num_fields, m.d
    if kind == "supernet":
        cands = tuple(s for s in (m.candidate_sizes or fm.candidate_sizes) if s > 0)
        per_id = max(cands) if m.layout == "nested" else sum(cands)
        tables = sum(vocab) * per_id
        unifiers = sum(nf * s * d + 2 * nf * d for s in cands)
    else:
        if sizes is None or len(sizes) != nf:
            raise ConfigError(f"a fixed model needs {nf} sizes, got {sizes!r}")
        tables = sum(v * s for v, s in zip(vocab, sizes, strict=True))
        unifiers = sum(s * d + 2 * d for s in sizes if s > 0)
    backbone = build_backbone(
        m.backbone, num_fields=nf, d=d, num_dense=len(fm.numeric_fields), hidden=m.hidden,
        dropout=m.dropout, cross_layers=m.cross_layers,
    )
    network = unifiers + sum(p.numel() for p in backbone.parameters())
    params = (tables + network) * FLOAT
    batch = max(1, cfg.batch_size // cfg.num_workers)
    widest = max(cands) if kind == "supernet" else max(sizes or (d,))
    # sparse gradient values + their coalesced copy, never more than the tables themselves
    touched = min(batch * nf * widest * FLOAT * 2, tables * FLOAT)
    grads = network * FLOAT + (touched if m.sparse else tables * FLOAT)
    parts = (
        ("parameters", params),
        ("gradients", grads),
        ("optimizer", 2 * params),
        ("best copy", params),
        ("model file", 2 * params),
        ("data", _data_bytes(fm, cfg)),
        ("activations", _activation_bytes(fm, cfg, batch)),
        ("runtime", RUNTIME),
    )
    return MemoryPlan(kind=kind, workers=cfg.num_workers, sparse=m.sparse, table_params=tables,
                      network_params=network, parts=parts)


def _data_bytes(fm: FeatureMap, cfg: TrainConfig) -> int:
    width = sum(f.max_len or 1 for f in fm.fields) + len(fm.numeric_fields) + 1
    rows = 0
    for split in ("train", "valid", "test"):
        info = fm.splits.get(split)
        if info is None:
            continue
        cap = cfg.max_rows if split == "train" else (cfg.eval_rows or cfg.max_rows)
        rows += min(info.rows, cap) if cap else info.rows
    return rows // cfg.num_workers * width * FLOAT


def _activation_bytes(fm: FeatureMap, cfg: TrainConfig, batch: int) -> int:
    # a step keeps embeddings, unified vectors and the backbone's layers for backward (x3 for
    # the chunked routing's copies and the gradients); evaluation keeps one layer at a time
    m = cfg.model
    width = fm.num_fields * m.d + sum(m.hidden)
    return max(batch * width * 3 * 3, EVAL_BATCH * width) * FLOAT


def available_per_worker(cfg: TrainConfig) -> int:
    """Memory a worker may use: ``memory_per_worker_gb`` when set, else this machine's available
    memory shared by the workers (all placed here, as on a one-machine Ray)."""
    if cfg.memory_per_worker_gb:
        return int(cfg.memory_per_worker_gb * GIB)
    return max(0, available_memory() - PROCESS_BASE * cfg.num_workers) // cfg.num_workers


def available_memory() -> int:
    """Available memory of this machine in bytes (``MemAvailable``; physical memory elsewhere)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(plan: MemoryPlan, available: int) -> None:
    """Refuse, in one line, a run whose workers would run out of memory.

    Raises:
        ConfigError: ``plan.per_worker`` exceeds ``available``.
    """
    if plan.per_worker <= available:
        return
    dense = "" if plan.sparse else "model.sparse=true (no dense table gradients), "
    raise ConfigError(
        f"this {plan.kind} run needs ≈ {_gib(plan.per_worker)} per worker "
        f"({plan.table_params:,} table params × 4 bytes × parameters, moments, best copy and "
        f"model file) but a worker has ≈ {_gib(available)}: raise prepare --min-count, hash "
        f"large fields to fewer buckets before prepare, use fewer candidate sizes "
        f"(model.candidate_sizes=...), {dense}or give each worker more memory (fewer "
        f"num_workers per machine, larger machines, or memory_per_worker_gb=... on a cluster)"
    )


def _gib(b: int | float) -> str:
    return f"{b / GIB:.2f} GiB" if b >= GIB / 100 else f"{b / (1 << 20):.1f} MiB"
