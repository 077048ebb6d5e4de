"""Ray Train's torch process group with its rendezvous store on loopback.

Ray Train's own setup (``TorchConfig``) has rank 0 start torch's c10d ``TCPStore``, which
listens on every interface (``::``) for the whole run, whatever the node address. On a Ray
instance bound to loopback (a local run, see :mod:`adass_ray.distributed.runtime`) that is the
one socket left reachable from outside. :class:`LoopbackTorchConfig` sets the CPU (gloo) process
group up the same way, except that rank 0 binds the store's socket to 127.0.0.1 itself and hands
it to ``TCPStore`` (``master_listen_fd``). GPU/TPU backends keep Ray's own setup.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ray.train.torch import TorchConfig
from ray.train.torch.config import _set_torch_distributed_env_vars, _TorchBackend

LOOPBACK = "127.0.0.1"
_listener: socket.socket | None = None  # rank 0's bound store socket, until the store takes it


def is_loopback_instance() -> bool:
    """True when the connected Ray node's address is a loopback address (a local run)."""
    import ray

    try:
        return ipaddress.ip_address(ray.util.get_node_ip_address()).is_loopback
    except ValueError:
        return False


def _bind_store_socket() -> int:
    """On rank 0: bind a listening socket on loopback for the store; return its port."""
    global _listener
    if _listener is not None:  # a previous, restarted group's socket the store never took
        _listener.close()
    _listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    _listener.bind((LOOPBACK, 0))
    _listener.listen(128)
    return int(_listener.getsockname()[1])


def _set_master(port: int) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = LOOPBACK, str(port)


def _init_process_group(*, backend: str, world_rank: int, world_size: int, port: int,
                        timeout_s: int) -> None:
    import torch.distributed as dist

    global _listener
    timeout = timedelta(seconds=timeout_s)
    if world_rank == 0:
        assert _listener is not None, "the store socket is bound on rank 0 first"
        fd, _listener = _listener.detach(), None  # the store owns (and closes) the socket now
        store = dist.TCPStore(LOOPBACK, port, world_size, True, timeout, master_listen_fd=fd)
    else:
        store = dist.TCPStore(LOOPBACK, port, world_size, False, timeout)
    dist.init_process_group(backend, store=store, rank=world_rank, world_size=world_size,
                            timeout=timeout)


class _LoopbackTorchBackend(_TorchBackend):
    def on_start(self, worker_group: Any, backend_config: Any) -> None:
        import ray

        gpus = worker_group.get_resources_per_worker().get("GPU", 0)
        backend = backend_config.backend or ("nccl" if gpus else "gloo")
        if backend != "gloo" or backend_config.init_method not in ("env", "tcp"):
            super().on_start(worker_group, backend_config)
            return
        port = worker_group.execute_single(0, _bind_store_socket)
        worker_group.execute(_set_master, port=port)
        worker_group.execute(_set_torch_distributed_env_vars)
        ray.get([
            worker_group.execute_single_async(
                # not rank=: execute_single_async's own first parameter is called rank
                i, _init_process_group, backend=backend, world_rank=i,
                world_size=len(worker_group),
                port=port, timeout_s=backend_config.timeout_s)
            for i in range(len(worker_group))
        ])


@dataclass
class LoopbackTorchConfig(TorchConfig):
    """``TorchConfig`` whose CPU process group rendezvous listens on 127.0.0.1 only."""

    @property
    def backend_cls(self) -> type[_LoopbackTorchBackend]:
        return _LoopbackTorchBackend
