"""Degraded tracking: what a tracker does when MLflow cannot be reached.

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
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class WarnOnce:
    """State shared by a tracker and its children: the warn-once flag."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.warned = False

    def warn_once(self, message: str) -> None:
        """Log ``message`` as a warning the first time, at debug level afterwards."""
        with self.lock:
            if self.warned:
                logger.debug("%s", message)
                return
            self.warned = True
        logger.warning("%s", message)


def keep_artifact(fallback_dir: Path, src: Path, artifact_path: str | None) -> None:
    """Copy a file, or a folder's files, to where the run's artifacts would have gone."""
    dest = fallback_dir / (artifact_path or "")
    dest.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dest, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dest / src.name)


def keep_dict(fallback_dir: Path, data: Mapping[str, Any], name: str) -> None:
    """Write ``data`` as the JSON (or ``.yaml`` / ``.yml``) file ``name`` under the folder."""
    dest = fallback_dir / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.suffix in (".yaml", ".yml"):
        import yaml

        text = yaml.safe_dump(dict(data), sort_keys=False)
    else:
        text = json.dumps(dict(data), indent=2, default=str)
    dest.write_text(text, encoding="utf-8")
