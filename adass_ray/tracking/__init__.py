"""The ``Tracker`` protocol, the no-op tracker and parameter flattening (no MLflow here).

:mod:`adass_ray.tracking` holds the MLflow implementation and re-exports these names.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
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

    def log_model(self, model: Any, name: str = "model") -> None:
        """Log a torch module as an MLflow model under ``name``."""
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

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


def _exit_status(exc_type: type[BaseException] | None) -> str:
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

    def log_model(self, model: Any, name: str = "model") -> None:
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

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(_exit_status(exc_type))


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested mappings (and dataclass instances) to dotted keys with string values.

    Args:
        params: e.g. ``{"model": {"dim": 16}, "lr": 0.01}``.
        prefix: key prefix used by the recursion.

    Returns:
        e.g. ``{"model.dim": "16", "lr": "0.01"}``; values longer than MLflow's limit
        (:data:`MAX_PARAM_VALUE_LENGTH`) are truncated, ending in ``"..."``.
    """
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
            continue
        text = str(value)
        if len(text) > MAX_PARAM_VALUE_LENGTH:
            text = text[: MAX_PARAM_VALUE_LENGTH - 3] + "..."
        flat[name] = text
    return flat
