"""Experiment tracking: a small ``Tracker`` protocol, an MLflow implementation and a no-op one.

This is the only module that imports ``mlflow``, and it does so lazily (inside functions), so
importing ``adass_ray.tracking`` stays cheap. :class:`MlflowTracker` talks to MLflow through
``mlflow.MlflowClient`` only — never the fluent global run state — so it works in several
threads and while a fluent run is already open (inside a Ray Tune trial one is); such a fluent
run becomes the parent of a new run unless an explicit parent is given.

Trackers are context managers: ``with tracker.child("search-0") as t: ...`` closes the child
run as FINISHED, or FAILED if the block raised (KILLED on KeyboardInterrupt). ``close()`` may be
called directly instead and is idempotent.

Where things go:

* tracking URI: the ``tracking_uri`` argument, else ``$MLFLOW_TRACKING_URI``, else
  ``sqlite:///<cwd>/mlflow.db``; relative sqlite paths are made absolute so Ray workers with
  another working directory write to the same file (pass :attr:`MlflowTracker.tracking_uri` on).
* artifacts of a newly created experiment: ``<folder of the sqlite file>/mlruns/<experiment>``
  for sqlite URIs (so ``<cwd>/mlruns/...`` for the default), ``<cwd>/mlruns/<experiment>`` for
  other database URIs, the server's choice for ``http(s)``, unless ``artifact_root`` is given.
  An existing experiment keeps its location.

If MLflow cannot be reached (an ``http(s)`` URI whose ``/health`` does not answer within 2 s, or
any error creating or attaching to the run), the tracker logs ONE warning saying tracking is
off and where artifacts are kept, then behaves as a no-op that copies logged artifacts (and
``log_dict`` files) into ``fallback_dir``: the pipeline goes on. A logging call that fails
later degrades the same way, except a rejected value (MLflow's INVALID_PARAMETER_VALUE, e.g.
re-logging a param with another value), which is the caller's bug and is raised.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from adass_ray.tracker import (  # noqa: E402  (re-exported: the public tracking API lives here)
    MAX_PARAM_VALUE_LENGTH,
    NoopTracker,
    Tracker,
    _exit_status,
    flatten_params,
)

logger = logging.getLogger(__name__)
__all__ = ["MAX_PARAM_VALUE_LENGTH", "MlflowTracker", "NoopTracker", "Tracker", "flatten_params",
           "make_tracker", "probe", "resolve_tracking_uri"]

PARENT_RUN_TAG = "mlflow.parentRunId"
_STATUSES = ("FINISHED", "FAILED", "KILLED")
_PROBE_TIMEOUT_S = 2.0


def resolve_tracking_uri(tracking_uri: str | None) -> str:
    """Return the tracking URI to use, with relative sqlite paths made absolute.

    Args:
        tracking_uri: an explicit URI, or None for ``$MLFLOW_TRACKING_URI`` or, if unset,
            ``sqlite:///<cwd>/mlflow.db``.

    Returns:
        The URI; ``sqlite:///rel.db`` becomes ``sqlite:////abs/rel.db``.
    """
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        return f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    db = _sqlite_path(uri)
    if db is not None and not db.is_absolute():
        query = uri.partition("?")[2]
        return f"sqlite:///{db.absolute()}" + (f"?{query}" if query else "")
    return uri


def _sqlite_path(uri: str) -> Path | None:
    """Return the database file of a ``sqlite:///`` URI (as written), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri[len("sqlite:///"):].partition("?")[0]
    if not raw or raw == ":memory:":
        return None
    return Path(raw)


_DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def _default_artifact_root(uri: str) -> Path | None:
    """Artifact root for new experiments: beside a sqlite file; ``<cwd>/mlruns`` for other
    database stores (MLflow would use a relative ``./mlruns``); None (the server decides) else."""
    db = _sqlite_path(uri)
    if db is not None:
        return db.parent / "mlruns"
    scheme = urllib.parse.urlsplit(uri).scheme.lower().partition("+")[0]
    return Path.cwd() / "mlruns" if scheme in _DB_SCHEMES else None


def _one_line(text: object, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "run"


def probe(tracking_uri: str, timeout_s: float = _PROBE_TIMEOUT_S) -> str | None:
    """Check quickly that an ``http(s)`` tracking server answers; other schemes pass.

    Args:
        tracking_uri: a resolved tracking URI.
        timeout_s: connection/read timeout for ``GET <uri>/health``.

    Returns:
        None if reachable (any HTTP answer counts, even an error status, since a proxy or auth
        layer may guard ``/health``), else a one-line reason.
    """
    scheme = urllib.parse.urlsplit(tracking_uri).scheme.lower()
    if scheme not in ("http", "https"):
        return None
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return _one_line(f"cannot reach {url}: {reason}")


def _is_caller_error(exc: BaseException) -> bool:
    """True for MLflow rejecting a value (a bug to surface), not for an unreachable store."""
    return getattr(exc, "error_code", None) == "INVALID_PARAMETER_VALUE"


class _Shared:
    """State shared by a tracker and its children: the warn-once flag."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.warned = False

    def warn_once(self, message: str) -> None:
        with self.lock:
            if self.warned:
                logger.debug("%s", message)
                return
            self.warned = True
        logger.warning("%s", message)


class MlflowTracker:
    """A :class:`Tracker` writing to one MLflow run through ``MlflowClient``.

    Build it with :meth:`start` (new run) or :meth:`attach` (existing run); the constructor is
    internal. When MLflow is unreachable it is a degraded tracker: :attr:`run_id` is None and
    artifacts are copied into ``fallback_dir`` (children into ``fallback_dir/<child name>``).
    Safe to share between threads; children are separate runs.
    """

    def __init__(self, *, client: Any | None, run_id: str | None, tracking_uri: str,
                 experiment_id: str | None, owns_run: bool, fallback_dir: Path | None,
                 shared: _Shared | None = None) -> None:
        self._client = client
        self._run_id = run_id
        self._tracking_uri = tracking_uri
        self._experiment_id = experiment_id
        self._owns_run = owns_run
        self._fallback_dir = fallback_dir
        self._shared = shared or _Shared()
        self._closed = False

    # ------------------------------------------------------------------ construction

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
        shared = _Shared()
        reason = probe(uri)
        if reason is None:
            try:
                client = _client(uri)
                experiment_id = _experiment_id(client, experiment, uri, artifact_root)
                parent = parent_run_id or _fluent_parent(client)
                run_id = _create_run(client, experiment_id, run_name, parent, tags)
            except Exception as exc:  # any store/network error: tracking off, the run goes on
                if _is_caller_error(exc):
                    raise
                reason = _one_line(f"{type(exc).__name__}: {exc}")
            else:
                logger.info("MLflow run %s (%s) in experiment %r at %s",
                            run_id, run_name, experiment, uri)
                return cls(client=client, run_id=run_id, tracking_uri=uri,
                           experiment_id=experiment_id, owns_run=True, fallback_dir=fallback,
                           shared=shared)
        tracker = cls(client=None, run_id=None, tracking_uri=uri, experiment_id=None,
                      owns_run=True, fallback_dir=fallback, shared=shared)
        tracker._warn_off(reason)
        return tracker

    @classmethod
    def attach(cls, *, tracking_uri: str | None, run_id: str,
               fallback_dir: str | os.PathLike[str] | None = None, owns_run: bool = False) -> MlflowTracker:
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
                client = _client(uri)
                run = client.get_run(run_id)
            except Exception as exc:
                reason = _one_line(f"{type(exc).__name__}: {exc}")
            else:
                return cls(client=client, run_id=run_id, tracking_uri=uri,
                           experiment_id=run.info.experiment_id, owns_run=owns_run,
                           fallback_dir=fallback)
        tracker = cls(client=None, run_id=None, tracking_uri=uri, experiment_id=None,
                      owns_run=owns_run, fallback_dir=fallback)
        tracker._warn_off(reason)
        return tracker

    # ------------------------------------------------------------------ properties

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

    # ------------------------------------------------------------------ logging

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
            from mlflow.entities import Param

            client.log_batch(self._run_id, params=[Param(k, v) for k, v in flat.items()])

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
            from mlflow.entities import Metric

            client.log_batch(self._run_id, metrics=[Metric(k, v, stamp, step or 0)
                                                    for k, v in values.items()])

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
            dest = self._fallback_dir / (artifact_path or "")
            dest.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dest, dirs_exist_ok=True)
            else:
                shutil.copy2(src, dest / src.name)

    def log_model(self, model: Any, name: str = "model") -> None:
        """Log a torch module as an MLflow model (``mlflow.pytorch`` flavour) under ``name``.

        The model is saved with ``mlflow.pytorch.save_model`` into a temp folder and uploaded with
        the client, so no fluent run is needed; load it with
        ``mlflow.pytorch.load_model("runs:/<run_id>/<name>")``.
        """
        import tempfile

        import mlflow.pytorch
        import torch

        with tempfile.TemporaryDirectory(prefix="adass-model-") as tmp:
            folder = Path(tmp) / name
            # pickle, not pt2: pt2 traces forward() on an example of tensors, and our models take a
            # Batch. Requirements are explicit: inferring them runs the model in a subprocess.
            quiet = logging.getLogger("mlflow.pytorch")
            level = quiet.level
            quiet.setLevel(logging.ERROR)  # its pickle-safety warning, once per model, is noise here
            try:
                mlflow.pytorch.save_model(model, str(folder), serialization_format="pickle",
                                          pip_requirements=[f"torch=={torch.__version__}"])
            finally:
                quiet.setLevel(level)
            self.log_artifact(folder, artifact_path=name)

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
            dest = self._fallback_dir / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.suffix in (".yaml", ".yml"):
                import yaml

                text = yaml.safe_dump(data, sort_keys=False)
            else:
                text = json.dumps(data, indent=2, default=str)
            dest.write_text(text, encoding="utf-8")

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags.

        Args:
            tags: name -> value (stringified).
        """
        if not tags:
            return
        values = {str(k): str(v) for k, v in tags.items()}

        def call(client: Any) -> None:
            from mlflow.entities import RunTag

            client.log_batch(self._run_id, tags=[RunTag(k, v) for k, v in values.items()])

        self._call("set_tags", call)

    # ------------------------------------------------------------------ runs

    def child(self, name: str, *, tags: Mapping[str, Any] | None = None) -> MlflowTracker:
        """Start a nested child run in the same experiment (tag ``mlflow.parentRunId``).

        Args:
            name: the child's run name (also its sub-folder of ``fallback_dir``).
            tags: extra tags for the child run.

        Returns:
            A tracker owning the child run; use ``with parent.child("x") as t:`` or close it.
            If the parent is degraded (or creating the child fails) the child is degraded too.
        """
        fallback = self._fallback_dir / _slug(name) if self._fallback_dir is not None else None
        client = self._client
        if client is not None:
            try:
                run_id = _create_run(client, self._experiment_id, name, self._run_id, tags)
            except Exception as exc:
                if _is_caller_error(exc):
                    raise
                self._warn_off(_one_line(f"{type(exc).__name__}: {exc}"), where=fallback)
            else:
                return MlflowTracker(client=client, run_id=run_id, tracking_uri=self._tracking_uri,
                                     experiment_id=self._experiment_id, owns_run=True,
                                     fallback_dir=fallback, shared=self._shared)
        return MlflowTracker(client=None, run_id=None, tracking_uri=self._tracking_uri,
                             experiment_id=None, owns_run=True, fallback_dir=fallback,
                             shared=self._shared)

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
        self.close(_exit_status(exc_type))

    def __repr__(self) -> str:
        state = f"run_id={self._run_id!r}" if self.active else f"off, fallback={self._fallback_dir}"
        return f"MlflowTracker({state}, uri={self._tracking_uri!r})"

    # ------------------------------------------------------------------ internals

    def _call(self, what: str, fn: Any) -> bool:
        """Run ``fn(client)``; on a store/network error degrade (warn once) and return False."""
        client = self._client
        if client is None:
            return False
        try:
            fn(client)
        except Exception as exc:
            if _is_caller_error(exc):
                raise
            self._client = None
            self._warn_off(_one_line(f"{what} failed: {type(exc).__name__}: {exc}"))
            return False
        return True

    def _warn_off(self, reason: str | None, where: Path | None = None) -> None:
        where = where if where is not None else self._fallback_dir
        kept = (f"artifacts are kept locally in {where}" if where is not None
                else "artifacts are not kept (no fallback folder given)")
        self._shared.warn_once(_one_line(
            f"MLflow tracking is off for this run ({self._tracking_uri}: {reason}); {kept}",
            limit=600))


def _client(uri: str) -> Any:
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)


def _experiment_id(client: Any, name: str, uri: str,
                   artifact_root: str | os.PathLike[str] | None) -> str:
    """Return the id of experiment ``name``, creating it with an explicit artifact location."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is None:
        root = Path(artifact_root) if artifact_root is not None else _default_artifact_root(uri)
        location = (root.absolute() / _slug(name)).as_uri() if root is not None else None
        try:
            return str(client.create_experiment(name, artifact_location=location))
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # another process won the race
                raise
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage != "active":
        raise RuntimeError(f"experiment {name!r} is deleted; restore it or use another name")
    return str(found.experiment_id)


def _fluent_parent(client: Any) -> str | None:
    """Return the active fluent run's id if it lives in ``client``'s store, else None."""
    import mlflow

    active = mlflow.active_run()
    if active is None:
        return None
    try:
        client.get_run(active.info.run_id)
    except Exception:
        logger.debug("active fluent run %s is in another store; not nesting under it",
                     active.info.run_id)
        return None
    return str(active.info.run_id)


def _create_run(client: Any, experiment_id: str | None, run_name: str, parent: str | None,
                tags: Mapping[str, Any] | None) -> str:
    all_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    if parent:
        all_tags[PARENT_RUN_TAG] = parent
    run = client.create_run(experiment_id, tags=all_tags, run_name=run_name)
    return str(run.info.run_id)


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
    if "run_id" in kw:
        return MlflowTracker.attach(**kw)
    return MlflowTracker.start(**kw)
