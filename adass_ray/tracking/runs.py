"""The MLflow implementation of the :class:`~adass_ray.tracking.Tracker` protocol.

Every MLflow call goes through :mod:`adass_ray.tracking.mlflow` (the only module that imports
``mlflow``, lazily). :class:`MlflowTracker` talks to MLflow through
``mlflow.MlflowClient`` only — never the fluent global run state — so it works in several
threads and while a fluent run is already open (inside a Ray Tune trial one is); such a fluent
run becomes the parent of a new run unless an explicit parent is given.

Trackers are context managers: ``with tracker.child("search-0") as t: ...`` closes the child
run as FINISHED, or FAILED if the block raised (KILLED on KeyboardInterrupt). ``close()`` may be
called directly instead and is idempotent.

Where runs and artifacts go: :mod:`adass_ray.tracking.uri`; what happens when MLflow cannot be
reached: :mod:`adass_ray.tracking.fallback`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from adass_ray.tracking import exit_status, flatten_params
from adass_ray.tracking import mlflow as backend
from adass_ray.tracking.fallback import WarnOnce, keep_artifact, keep_dict
from adass_ray.tracking.uri import one_line, probe, resolve_tracking_uri, slug

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
logger = logging.getLogger(__name__)

_STATUSES = ("FINISHED", "FAILED", "KILLED")


class MlflowTracker:
    """A :class:`Tracker` writing to one MLflow run through ``MlflowClient``.

    Build it with :meth:`start` (new run) or :meth:`attach` (existing run); the constructor is
    internal. When MLflow is unreachable it is a degraded tracker: :attr:`run_id` is None and
    artifacts are copied into ``fallback_dir`` (children into ``fallback_dir/<child name>``).
    Safe to share between threads; children are separate runs.
    """

    def __init__(self, *, client: Any | None, run_id: str | None, tracking_uri: str,
                 experiment_id: str | None, owns_run: bool, fallback_dir: Path | None,
                 shared: WarnOnce | None = None) -> None:
        self._client = client
        self._run_id = run_id
        self._tracking_uri = tracking_uri
        self._experiment_id = experiment_id
        self._owns_run = owns_run
        self._fallback_dir = fallback_dir
        self._shared = shared or WarnOnce()
        self._closed = False


    @classmethod
    def start(cls, *, tracking_uri: str | None, experiment: str, run_name: str,
              parent_run_id: str | None = None, tags: Mapping[str, Any] | None = None,
              fallback_dir: str | os.PathLike[str] | None = None,
              artifact_root: str | os.PathLike[str] | None = None) -> MlflowTracker:
        """Create a new run (and the experiment if needed).

        Args:
            tracking_uri: MLflow tracking URI; None for ``$MLFLOW_TRACKING_URI`` or
                ``sqlite:///<cwd>/mlflow.db``.
            experiment: experiment name (one per dataset by convention).
            run_name: the run's display name.
            parent_run_id: make the run a child of this run. When None and a fluent MLflow run
                is active in this thread and lives in the same store, that run is the parent.
            tags: extra run tags.
            fallback_dir: where artifacts go if MLflow cannot be reached (None: dropped).
            artifact_root: folder under which a newly created experiment keeps its artifacts
                (``<artifact_root>/<experiment>``); default beside the sqlite file.

        Returns:
            A tracker for the new run, or a degraded one (after one warning) if MLflow failed.
        """
        uri = resolve_tracking_uri(tracking_uri)
        fallback = Path(fallback_dir).absolute() if fallback_dir is not None else None
        shared = WarnOnce()
        reason = probe(uri)
        if reason is None:
            try:
                client = backend.client(uri)
                experiment_id = backend.experiment_id(client, experiment, uri, artifact_root)
                parent = parent_run_id or backend.fluent_parent(client)
                run_id = backend.create_run(client, experiment_id, run_name, parent, tags)
            except Exception as exc:  # any store/network error: tracking off, the run goes on
                if backend.is_caller_error(exc):
                    raise
                reason = one_line(f"{type(exc).__name__}: {exc}")
            else:
                logger.info(
                    "MLflow run %s (%s) in experiment %r at %s", run_id, run_name, experiment, uri
                )
                return cls(
                    client=client,
                    run_id=run_id,
                    tracking_uri=uri,
                    experiment_id=experiment_id,
                    owns_run=True,
                    fallback_dir=fallback,
                    shared=shared,
                )
        tracker = cls(
            client=None,
            run_id=None,
            tracking_uri=uri,
            experiment_id=None,
            owns_run=True,
            fallback_dir=fallback,
            shared=shared,
        )
        tracker._warn_off(reason)
        return tracker

    @classmethod
    def attach(cls, *, tracking_uri: str | None, run_id: str,
               fallback_dir: str | os.PathLike[str] | None = None, owns_run: bool = False
    ) -> MlflowTracker:
        """Log into an existing run, e.g. from Ray Train worker rank 0 into the driver's run.

        The attached tracker does not own the run: :meth:`close` leaves its status alone (the
        creator ends it); its children are owned by it as usual.

        Args:
            tracking_uri: the creator's :attr:`tracking_uri` (None resolves as in :meth:`start`).
            run_id: the run to log into.
            fallback_dir: where artifacts go if MLflow cannot be reached.
            owns_run: take the run over (a resumed run that this tracker now finishes), so
                :meth:`close` sets its status.

        Returns:
            A tracker for that run, or a degraded one (after one warning).
        """
        uri = resolve_tracking_uri(tracking_uri)
        fallback = Path(fallback_dir).absolute() if fallback_dir is not None else None
        reason = probe(uri)
        if reason is None:
            try:
                client = backend.client(uri)
                run = client.get_run(run_id)
            except Exception as exc:
                reason = one_line(f"{type(exc).__name__}: {exc}")
            else:
                return cls(
                    client=client,
                    run_id=run_id,
                    tracking_uri=uri,
                    experiment_id=run.info.experiment_id,
                    owns_run=owns_run,
                    fallback_dir=fallback,
                )
        tracker = cls(
            client=None,
            run_id=None,
            tracking_uri=uri,
            experiment_id=None,
            owns_run=owns_run,
            fallback_dir=fallback,
        )
        tracker._warn_off(reason)
        return tracker


    @property
    def run_id(self) -> str | None:
        """The run id; None when degraded (tracking off)."""
        return self._run_id if self._client is not None else None

    @property
    def tracking_uri(self) -> str | None:
        """The resolved tracking URI (absolute for sqlite); pass it to :meth:`attach`."""
        return self._tracking_uri

    @property
    def active(self) -> bool:
        """Whether this tracker still writes to MLflow (False once degraded)."""
        return self._client is not None

    @property
    def fallback_dir(self) -> Path | None:
        """Where artifacts are copied while degraded."""
        return self._fallback_dir


    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params, flattened with :func:`flatten_params`.

        Args:
            params: possibly nested mapping of param values.

        Raises:
            mlflow.exceptions.MlflowException: if MLflow rejects a value (e.g. a param re-logged
                with another value).
        """
        flat = flatten_params(params)
        if not flat:
            return

        def call(client: Any) -> None:
            client.log_batch(self._run_id, params=backend.params(flat))

        self._call("log_params", call)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log scalar metrics.

        Args:
            metrics: name -> value (anything ``float()`` accepts, NaN/inf included).
            step: training step or epoch; 0 when None.
        """
        if not metrics:
            return
        stamp = int(time.time() * 1000)
        values = {str(k): float(v) for k, v in metrics.items()}

        def call(client: Any) -> None:
            client.log_batch(self._run_id, metrics=backend.metrics(values, stamp, step or 0))

        self._call("log_metrics", call)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Log a file, or every file of a folder, into the run's artifacts.

        Args:
            path: local file or folder.
            artifact_path: sub-folder in the run's artifacts (None: top level).

        Raises:
            FileNotFoundError: if ``path`` does not exist.
        """
        src = Path(path)
        if not src.exists():
            raise FileNotFoundError(f"artifact {src} does not exist")

        def call(client: Any) -> None:
            if src.is_dir():
                client.log_artifacts(self._run_id, str(src), artifact_path)
            else:
                client.log_artifact(self._run_id, str(src), artifact_path)

        if not self._call("log_artifact", call) and self._fallback_dir is not None:
            keep_artifact(self._fallback_dir, src, artifact_path)

    def log_dict(self, d: Mapping[str, Any], name: str) -> None:
        """Log a mapping as an artifact file.

        Args:
            d: JSON/YAML-serializable mapping.
            name: artifact file path, e.g. ``"sizes.json"`` or ``"front/config.yaml"``.
        """
        data = dict(d)

        def call(client: Any) -> None:
            client.log_dict(self._run_id, data, name)

        if not self._call("log_dict", call) and self._fallback_dir is not None:
            keep_dict(self._fallback_dir, data, name)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags.

        Args:
            tags: name -> value (stringified).
        """
        if not tags:
            return
        values = {str(k): str(v) for k, v in tags.items()}

        def call(client: Any) -> None:
            client.log_batch(self._run_id, tags=backend.tags(values))

        self._call("set_tags", call)


    def child(self, name: str, *, tags: Mapping[str, Any] | None = None) -> MlflowTracker:
        """Start a nested child run in the same experiment (tag ``mlflow.parentRunId``).

        Args:
            name: the child's run name (also its sub-folder of ``fallback_dir``).
            tags: extra tags for the child run.

        Returns:
            A tracker owning the child run; use ``with parent.child("x") as t:`` or close it.
            If the parent is degraded (or creating the child fails) the child is degraded too.
        """
        fallback = self._fallback_dir / slug(name) if self._fallback_dir is not None else None
        client = self._client
        if client is not None:
            try:
                run_id = backend.create_run(client, self._experiment_id, name, self._run_id, tags)
            except Exception as exc:
                if backend.is_caller_error(exc):
                    raise
                self._warn_off(one_line(f"{type(exc).__name__}: {exc}"), where=fallback)
            else:
                return MlflowTracker(
                    client=client,
                    run_id=run_id,
                    tracking_uri=self._tracking_uri,
                    experiment_id=self._experiment_id,
                    owns_run=True,
                    fallback_dir=fallback,
                    shared=self._shared,
                )
        return MlflowTracker(
            client=None,
            run_id=None,
            tracking_uri=self._tracking_uri,
            experiment_id=None,
            owns_run=True,
            fallback_dir=fallback,
            shared=self._shared,
        )

    def close(self, status: str = "FINISHED") -> None:
        """End the run with ``status`` if this tracker created it; later calls do nothing.

        Args:
            status: ``"FINISHED"``, ``"FAILED"`` or ``"KILLED"``.

        Raises:
            ValueError: on another status.
        """
        if status not in _STATUSES:
            raise ValueError(f"status must be one of {_STATUSES}, got {status!r}")
        if self._closed:
            return
        self._closed = True
        if self._owns_run:
            self._call("close", lambda client: client.set_terminated(self._run_id, status))

    def __enter__(self) -> MlflowTracker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(exit_status(exc_type))

    def __repr__(self) -> str:
        state = f"run_id={self._run_id!r}" if self.active else f"off, fallback={self._fallback_dir}"
        return f"MlflowTracker({state}, uri={self._tracking_uri!r})"


    def _call(self, what: str, fn: Any) -> bool:
        """Run ``fn(client)``; on a store/network error degrade (warn once) and return False."""
        client = self._client
        if client is None:
            return False
        try:
            fn(client)
        except Exception as exc:
            if backend.is_caller_error(exc):
                raise
            self._client = None
            self._warn_off(one_line(f"{what} failed: {type(exc).__name__}: {exc}"))
            return False
        return True

    def _warn_off(self, reason: str | None, where: Path | None = None) -> None:
        where = where if where is not None else self._fallback_dir
        kept = (
            f"artifacts are kept locally in {where}"
            if where is not None
            else "artifacts are not kept (no fallback folder given)"
        )
        self._shared.warn_once(
            one_line(
                f"MLflow tracking is off for this run ({self._tracking_uri}: {reason}); {kept}",
                limit=600,
            )
        )
