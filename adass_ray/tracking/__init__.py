"""Experiment tracking: the ``Tracker`` protocol, the no-op tracker and :class:`TrackingSpec`.

No MLflow import here: :mod:`adass_ray.tracking.mlflow` is the only module that imports it, and
:meth:`TrackingSpec.start` / :meth:`TrackingSpec.attach` load it only when tracking is on.

A :class:`TrackingSpec` is the one shape in which "where to log" travels: from the CLI to a
stage, from a stage to its Ray Train workers (``run_id`` set: they log into the stage's run) and
to Tune trials (``parent_run_id`` set: each trial starts a child run).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

#: MLflow's limit on a param value (``mlflow.utils.validation.MAX_PARAM_VAL_LENGTH``).
MAX_PARAM_VALUE_LENGTH = 6000


@runtime_checkable
class Tracker(Protocol):
    """Where a pipeline step sends params, metrics and artifacts.

    Implementations: :class:`MlflowTracker` and :class:`NoopTracker`. Every tracker is a context
    manager whose exit calls :meth:`close` (FAILED if the block raised).
    """

    @property
    def run_id(self) -> str | None:
        """The MLflow run id, or None when nothing is tracked."""
        ...

    @property
    def tracking_uri(self) -> str | None:
        """The resolved tracking URI to hand to workers (with :attr:`run_id`), or None."""
        ...

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params; nested mappings/dataclasses flatten to dotted keys, values to strings."""
        ...

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log scalar metrics at ``step`` (0 when None)."""
        ...

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Log a file or a whole folder under ``artifact_path`` in the run's artifacts."""
        ...

    def log_dict(self, d: Mapping[str, Any], name: str) -> None:
        """Log a mapping as a JSON (or ``.yaml``/``.yml``) artifact file called ``name``."""
        ...

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags (values stringified)."""
        ...

    def child(self, name: str, *, tags: Mapping[str, Any] | None = None) -> Tracker:
        """Start a nested child run; use it as a context manager or call ``close()``."""
        ...

    def close(self, status: str = "FINISHED") -> None:
        """End the run (FINISHED, FAILED or KILLED); idempotent."""
        ...

    def __enter__(self) -> Tracker: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def exit_status(exc_type: type[BaseException] | None) -> str:
    if exc_type is None:
        return "FINISHED"
    return "KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED"


class NoopTracker:
    """A tracker that records nothing (tracking disabled)."""

    @property
    def run_id(self) -> str | None:
        """Always None."""
        return None

    @property
    def tracking_uri(self) -> str | None:
        """Always None."""
        return None

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Do nothing."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Do nothing."""

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Do nothing."""

    def log_dict(self, d: Mapping[str, Any], name: str) -> None:
        """Do nothing."""

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Do nothing."""

    def child(self, name: str, *, tags: Mapping[str, Any] | None = None) -> NoopTracker:
        """Return another no-op tracker."""
        return NoopTracker()

    def close(self, status: str = "FINISHED") -> None:
        """Do nothing."""

    def __enter__(self) -> NoopTracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(exit_status(exc_type))


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested mappings (and dataclass instances) to dotted keys with string values.

    Args:
        params: e.g. ``{"model": {"dim": 16}, "lr": 0.01}``.
        prefix: prepended to every key.

    Returns:
        e.g. ``{"model.dim": "16", "lr": "0.01"}``; values longer than MLflow's limit
        (:data:`MAX_PARAM_VALUE_LENGTH`) are truncated, ending in ``"..."``.
    """
    from adass_ray.configio import flatten

    flat: dict[str, str] = {}
    for name, value in flatten(_plain(params), prefix).items():
        text = str(value)
        if len(text) > MAX_PARAM_VALUE_LENGTH:
            text = text[: MAX_PARAM_VALUE_LENGTH - 3] + "..."
        flat[name] = text
    return flat


def _plain(value: Any) -> Any:
    """Dataclass instances become mappings, recursively (the rest is left as it is)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class TrackingSpec:
    """Where a stage, a worker or a trial logs; plain data, so it travels to Ray processes.

    Attributes:
        enabled: False logs nothing (every tracker is a :class:`NoopTracker`).
        uri: MLflow tracking URI (None: ``$MLFLOW_TRACKING_URI``, else ``./mlflow.db``).
        experiment: experiment name (None: the dataset's name).
        parent_run_id: new runs become children of this run.
        run_id: an existing run to log into (:meth:`attach`), e.g. the stage's run on rank 0.
    """

    enabled: bool = True
    uri: str | None = None
    experiment: str | None = None
    parent_run_id: str | None = None
    run_id: str | None = None

    def start(
        self,
        *,
        run_name: str,
        default_experiment: str,
        fallback_dir: str | os.PathLike[str] | None = None,
    ) -> Tracker:
        """A new run (a child of ``parent_run_id`` when set); a no-op tracker when disabled."""
        if not self.enabled:
            return NoopTracker()
        from adass_ray.tracking.runs import MlflowTracker

        return MlflowTracker.start(
            tracking_uri=self.uri,
            experiment=self.experiment or default_experiment,
            run_name=run_name,
            parent_run_id=self.parent_run_id,
            fallback_dir=Path(fallback_dir) if fallback_dir is not None else None,
        )

    def attach(
        self, *, owns_run: bool = False, fallback_dir: str | os.PathLike[str] | None = None
    ) -> Tracker:
        """A tracker logging into ``run_id``; a no-op tracker when disabled or without a run."""
        if not self.enabled or not self.run_id:
            return NoopTracker()
        from adass_ray.tracking.runs import MlflowTracker

        return MlflowTracker.attach(
            tracking_uri=self.uri, run_id=self.run_id, owns_run=owns_run, fallback_dir=fallback_dir
        )

    def children_of(self, tracker: Tracker, *, experiment: str | None = None) -> TrackingSpec:
        """The spec for runs nested under ``tracker``'s run (disabled if it tracks nothing)."""
        return replace(
            self,
            enabled=self.enabled and tracker.run_id is not None,
            uri=tracker.tracking_uri or self.uri,
            experiment=self.experiment or experiment,
            parent_run_id=tracker.run_id,
            run_id=None,
        )

    def into(self, tracker: Tracker) -> TrackingSpec:
        """The spec that logs into ``tracker``'s own run (for its workers)."""
        return replace(
            self,
            enabled=self.enabled and tracker.run_id is not None,
            uri=tracker.tracking_uri or self.uri,
            run_id=tracker.run_id,
        )


def make_tracker(enabled: bool, **kw: Any) -> Tracker:
    """Return a tracker: a :class:`NoopTracker` when disabled, else an :class:`MlflowTracker`.

    Args:
        enabled: whether to track at all.
        **kw: keyword arguments of :meth:`MlflowTracker.attach` when ``run_id`` is among them,
            else of :meth:`MlflowTracker.start`.

    Returns:
        The tracker.
    """
    if not enabled:
        return NoopTracker()
    from adass_ray.tracking.runs import MlflowTracker

    if "run_id" in kw:
        return MlflowTracker.attach(**kw)
    return MlflowTracker.start(**kw)
