"""cluster.yaml is a launcher config Ray 2.60 accepts, and it holds what the docs promise.

The check is the one `ray up` makes before it touches the cloud (``_bootstrap_config`` in
``ray/autoscaler/_private/commands.py``): ``prepare_config`` then ``validate_config``, private
launcher API, run on a copy of the parsed file. ``validate_config`` must come after
``prepare_config``, because it requires fields only the defaults add (``cluster_synced_files``
and others).

Why the real ``provider: aws`` can be checked offline: for aws, ``prepare_config`` only merges
``ray/autoscaler/aws/defaults.yaml`` (a file in the wheel), merges the setup commands and fills
each node type's min/max workers. boto3 and the network only come in at the next steps of
``ray up``: autodetecting instance resources and ``bootstrap_aws`` (IAM role, key pair, subnets,
security group). Those need credentials and are not run here. boto3 is not installed in this
venv, and ``test_validation_is_offline`` blocks both boto3 and sockets to keep it that way. So
there is no need for a stand-in provider such as ``local``, whose ``prepare_local`` would rewrite
the node types.

The negative cases show the check can fail. One launcher quirk: the raw schema rejects a top-level
``min_workers``, but ``prepare_config`` (``fillout_defaults``) silently drops it first, so
``ray up`` accepts it. An unknown key such as ``bogus`` is the honest negative case.
"""

from __future__ import annotations

import copy
import re
import socket
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_YAML = ROOT / "cluster.yaml"
REPO_ON_NODE = "~/adass_ray"  # where file_mounts puts the repo (/home/ubuntu/adass_ray)


def _raw() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def _prepare(raw: dict[str, Any]) -> dict[str, Any]:
    from ray.autoscaler._private.util import prepare_config

    return prepare_config(copy.deepcopy(raw))


def _validate(raw: dict[str, Any]) -> dict[str, Any]:
    """What `ray up` does to the file before any cloud call; returns the prepared config."""
    from ray.autoscaler._private.util import validate_config

    prepared = _prepare(raw)
    validate_config(prepared)
    return prepared


def _header() -> str:
    lines = []
    for line in CLUSTER_YAML.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def test_cluster_yaml_passes_the_launcher_schema():
    prepared = _validate(_raw())
    assert prepared["provider"]["type"] == "aws"
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_validation_is_offline(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)  # `import boto3` now raises ImportError

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("validating cluster.yaml tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    _validate(_raw())


def _set(path: tuple[str, ...], value: Any):
    def mutate(cfg: dict[str, Any]) -> None:
        node = cfg
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _del(path: tuple[str, ...]):
    def mutate(cfg: dict[str, Any]) -> None:
        node = cfg
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


@pytest.mark.parametrize(
    "mutate, error, match",
    [
        (_set(("bogus",), 1), jsonschema.ValidationError, "'bogus' was unexpected"),
        (_set(("available_node_types", "cpu_worker", "min_worker"), 1),  # typo in a node type
         jsonschema.ValidationError, "'min_worker' was unexpected"),
        (_set(("available_node_types", "gpu_worker", "resources", "search_slot"), 0.5),
         jsonschema.ValidationError, "not of type 'integer'"),  # resources are whole numbers
        (_del(("available_node_types", "gpu_worker", "resources")),
         jsonschema.ValidationError, "'resources' is a required property"),
        (_set(("max_workers",), "twelve"), jsonschema.ValidationError, "not of type 'integer'"),
        (_set(("head_node_type",), "no_such_type"), ValueError, "must be one of"),
        (_set(("max_workers",), 0), ValueError, "smaller than the sum of `min_workers`"),
    ],
    ids=["unknown-key", "node-type-typo", "fractional-resource", "no-resources",
         "wrong-type", "unknown-head-type", "max-below-min"],
)
def test_a_broken_copy_is_rejected(mutate, error, match):
    cfg = _raw()
    mutate(cfg)
    with pytest.raises(error, match=match):
        _validate(cfg)


def test_top_level_min_workers_is_dropped_by_prepare_config_not_rejected():
    from ray.autoscaler._private.util import validate_config

    cfg = _raw()
    cfg["min_workers"] = 1
    with pytest.raises(jsonschema.ValidationError, match="min_workers"):
        validate_config({**_prepare(_raw()), "min_workers": 1})  # the bare schema says no
    assert "min_workers" not in _validate(cfg)  # but `ray up` drops it before validating


def test_node_types_offer_what_the_docs_promise():
    prepared = _validate(_raw())
    types = prepared["available_node_types"]
    head = types[prepared["head_node_type"]]
    assert head["resources"] == {"CPU": 0}  # no training work on the head
    assert types["cpu_worker"]["resources"]["CPU"] >= 1
    assert types["cpu_worker"]["min_workers"] >= 1  # a job can start before any scale-up
    gpu = types["gpu_worker"]["resources"]
    assert gpu["GPU"] >= 1
    assert gpu["search_slot"] >= 1  # the custom resource for search actors / Tune trials
    workers = [t for name, t in types.items() if name != prepared["head_node_type"]]
    assert sum(t["min_workers"] for t in workers) <= prepared["max_workers"]
    assert all(t["max_workers"] <= prepared["max_workers"] for t in workers)


def _effective_setup(prepared: dict[str, Any], node_type: str) -> list[str]:
    """The setup commands the launcher runs on a node of this type (after merging)."""
    if node_type == prepared["head_node_type"]:
        return prepared["head_setup_commands"]
    # a node type's own worker_setup_commands replace the merged global ones
    return prepared["available_node_types"][node_type].get(
        "worker_setup_commands", prepared["worker_setup_commands"])


def test_every_node_type_installs_the_package():
    prepared = _validate(_raw())
    assert prepared["file_mounts"] == {"/home/ubuntu/adass_ray": "."}  # no local absolute paths
    install = re.compile(r"pip install .*-e " + re.escape(REPO_ON_NODE) + r"(\s|$)")
    for node_type in prepared["available_node_types"]:
        cmds = _effective_setup(prepared, node_type)
        assert any(install.search(c) for c in cmds), f"{node_type} does not install adass_ray"
        assert any("venv" in c for c in cmds), f"{node_type} skips the venv setup"
        assert any("/mnt/shared" in c for c in cmds), f"{node_type} does not mount the shared fs"
    gpu_cmds = " ".join(_effective_setup(prepared, "gpu_worker"))
    assert "whl/cpu" not in gpu_cmds  # GPU nodes get the CUDA build of torch
    assert "whl/cpu" in " ".join(_effective_setup(prepared, "cpu_worker"))
    assert "boto3" in " ".join(prepared["head_setup_commands"])  # the head's autoscaler needs it


def test_start_commands_bind_the_dashboard_and_join_the_head():
    prepared = _validate(_raw())
    head = " ; ".join(prepared["head_start_ray_commands"])
    assert "ray start --head --port=6379" in head
    assert "--dashboard-host=0.0.0.0" in head
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    assert "mlflow server" in head and "MLFLOW_TRACKING_URI=" in head
    worker = " ; ".join(prepared["worker_start_ray_commands"])
    assert "ray start --address=$RAY_HEAD_IP:6379" in worker
    assert "MLFLOW_TRACKING_URI=http://$RAY_HEAD_IP:5000" in worker


def test_token_auth_reaches_every_node():
    prepared = _validate(_raw())
    common = " ".join(prepared["setup_commands"])
    assert "RAY_AUTH_MODE=token" in common
    assert any("get-auth-token --generate" in c for c in prepared["head_setup_commands"])
    assert "~/.ray/auth_token" in prepared["cluster_synced_files"]


def test_header_documents_the_workflow():
    header = _header()
    assert "ray up cluster.yaml" in header
    assert "ray dashboard cluster.yaml" in header
    assert "ray down cluster.yaml" in header
    submit = re.search(
        r"ray job submit --working-dir \. --[\s\\#]*python jobs/pipeline\.py", header
    )
    assert submit, "the header must show `ray job submit ... python jobs/pipeline.py`"
    assert (ROOT / "jobs" / "pipeline.py").is_file()
    assert "jobs/sweep_penalty.py" in header
    assert "RAY_ADDRESS=http://127.0.0.1:8265" in header
    assert "MLFLOW_TRACKING_URI" in header and "RAY_AUTH_MODE" in header
