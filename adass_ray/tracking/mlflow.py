"""The one module that imports ``mlflow`` (lazily, inside functions, so importing it is cheap).

Thin functions over ``mlflow.MlflowClient`` and the MLflow entities, used by
:class:`~adass_ray.tracking.runs.MlflowTracker`; nothing else in the package talks to MLflow.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adass_ray.tracking.uri import default_artifact_root, slug

logger = logging.getLogger(__name__)
PARENT_RUN_TAG = "mlflow.parentRunId"
# The MLflow 3 UI files experiments under "GenAI apps & agents" or "Machine learning" by this
# tag (values from its bundle's ExperimentKind enum); ours train models, so the second.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# The runs table of the MLflow 3 UI starts with Source / Models / Dataset columns and no metric.
# A saved view (an experiment tag ``mlflow.sharedViewState.<key>`` holding the table's state as
# JSON, opened by ``?viewStateShareKey=<key>``) puts the metrics a reader compares first.
VIEW_KEY = "adass-ray"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
HEADLINE_METRICS = (
    "searched_test_auc_mean", "uniform_test_auc_mean", "searched_embedding_params",
    "uniform_embedding_params", "test_auc", "test_logloss", "embedding_params",
    "searched_test_logloss_mean", "uniform_test_logloss_mean", "selected_quality",
    "selected_cost", "best_val_auc",
)


def is_caller_error(exc: BaseException) -> bool:
    """True for MLflow rejecting a value (a bug to surface), not for an unreachable store."""
    return getattr(exc, "error_code", None) == "INVALID_PARAMETER_VALUE"


def params(flat: Mapping[str, str]) -> list[Any]:
    """``Param`` entities for ``log_batch``."""
    from mlflow.entities import Param

    return [Param(k, v) for k, v in flat.items()]


def metrics(values: Mapping[str, float], stamp: int, step: int) -> list[Any]:
    """``Metric`` entities for ``log_batch`` (one timestamp and step for all)."""
    from mlflow.entities import Metric

    return [Metric(k, v, stamp, step) for k, v in values.items()]


def tags(values: Mapping[str, str]) -> list[Any]:
    """``RunTag`` entities for ``log_batch``."""
    from mlflow.entities import RunTag

    return [RunTag(k, v) for k, v in values.items()]


def client(uri: str) -> Any:
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)


def experiment_id(
    client: Any, name: str, uri: str, artifact_root: str | os.PathLike[str] | None
) -> str:
    """Return the id of experiment ``name``, creating it with an explicit artifact location.

    The experiment is marked as a model-training one (:data:`EXPERIMENT_KIND_TAG`) unless it
    already has a kind, which is left alone.
    """
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is None:
        root = Path(artifact_root) if artifact_root is not None else default_artifact_root(uri)
        location = (root.absolute() / slug(name)).as_uri() if root is not None else None
        try:
            tags = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, VIEW_TAG: view_state()}
            return str(client.create_experiment(name, artifact_location=location, tags=tags))
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # another process won the race
                raise
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage != "active":
        raise RuntimeError(f"experiment {name!r} is deleted; restore it or use another name")
    have = found.tags or {}
    if EXPERIMENT_KIND_TAG not in have:  # made before we tagged, or by hand
        client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    if have.get(VIEW_TAG) != view_state():
        client.set_experiment_tag(found.experiment_id, VIEW_TAG, view_state())
    return str(found.experiment_id)


def view_state() -> str:
    """The saved runs-table view (JSON): :data:`HEADLINE_METRICS` as the first columns, wide
    enough for their names, sorted by the pipeline's searched AUC.

    Column keys are the UI's canonical ``metrics.`name``` form; a metric a run lacks shows ``-``.
    Sorting by a metric (not by creation time) also makes the UI list stage runs flat under the
    pipeline run instead of folded into it (its nesting applies only to the default sort).
    """
    columns = [f"metrics.`{m}`" for m in HEADLINE_METRICS]
    return json.dumps(
        {
            "selectedColumns": columns,
            "columnOrder": columns,
            "columnWidths": {c: max(96, 6 * len(m) + 30) for c, m in zip(
                columns, HEADLINE_METRICS, strict=True)},
            "orderByKey": columns[0],
            "orderByAsc": False,
        },
        separators=(",", ":"),
    )


def experiment_url(base: str, experiment_id: str) -> str:
    """The UI's address of an experiment's runs in the model-training view with our columns.

    ``workflowType=machine_learning`` is what picks the view in MLflow 3.17: its UI follows a
    global GenAI / Model-training switch (this URL parameter, else the last choice kept in the
    browser, else GenAI), not the experiment's kind tag.
    """
    return (
        f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs"
        f"?viewStateShareKey={VIEW_KEY}&workflowType=machine_learning"
    )


def ui_url(uri: str, experiment: str, base: str = "http://127.0.0.1:5000") -> str | None:
    """:func:`experiment_url` of experiment ``experiment`` in the store at ``uri`` (None when
    the store cannot be read or has no such experiment)."""
    try:
        found = client(uri).get_experiment_by_name(experiment)
    except Exception:  # a printout helper: an unreadable store just means no link
        logger.debug("no experiment %r at %s", experiment, uri, exc_info=True)
        return None
    return experiment_url(base, str(found.experiment_id)) if found is not None else None


def fluent_parent(client: Any) -> str | None:
    """Return the active fluent run's id if it lives in ``client``'s store, else None."""
    import mlflow

    active = mlflow.active_run()
    if active is None:
        return None
    try:
        client.get_run(active.info.run_id)
    except Exception:
        logger.debug(
            "active fluent run %s is in another store; not nesting under it", active.info.run_id
        )
        return None
    return str(active.info.run_id)


def create_run(
    client: Any,
    experiment_id: str | None,
    run_name: str,
    parent: str | None,
    tags: Mapping[str, Any] | None,
) -> str:
    all_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    if parent:
        all_tags[PARENT_RUN_TAG] = parent
    run = client.create_run(experiment_id, tags=all_tags, run_name=run_name)
    return str(run.info.run_id)
