"""Where tracking goes: resolving the tracking URI, the artifact root, and probing a server.

No MLflow import here: these are plain string/path rules (and one HTTP GET), shared by the
MLflow tracker and the CLI's "browse with" line.

Where things go:

* tracking URI: the ``tracking_uri`` argument, else ``$MLFLOW_TRACKING_URI``, else
  ``sqlite:///<cwd>/mlflow.db``; relative sqlite paths are made absolute so Ray workers with
  another working directory write to the same file (pass :attr:`MlflowTracker.tracking_uri` on).
* artifacts of a newly created experiment: ``<folder of the sqlite file>/mlruns/<experiment>``
  for sqlite URIs (so ``<cwd>/mlruns/...`` for the default), ``<cwd>/mlruns/<experiment>`` for
  other database URIs, the server's choice for ``http(s)``, unless ``artifact_root`` is given.
  An existing experiment keeps its location.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

PROBE_TIMEOUT_S = 2.0
DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


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
    db = sqlite_path(uri)
    if db is not None and not db.is_absolute():
        query = uri.partition("?")[2]
        return f"sqlite:///{db.absolute()}" + (f"?{query}" if query else "")
    return uri


def sqlite_path(uri: str) -> Path | None:
    """Return the database file of a ``sqlite:///`` URI (as written), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri[len("sqlite:///") :].partition("?")[0]
    if not raw or raw == ":memory:":
        return None
    return Path(raw)


def default_artifact_root(uri: str) -> Path | None:
    """Artifact root for new experiments: beside a sqlite file; ``<cwd>/mlruns`` for other
    database stores (MLflow would use a relative ``./mlruns``); None (the server decides) else."""
    db = sqlite_path(uri)
    if db is not None:
        return db.parent / "mlruns"
    scheme = urllib.parse.urlsplit(uri).scheme.lower().partition("+")[0]
    return Path.cwd() / "mlruns" if scheme in DB_SCHEMES else None


def one_line(text: object, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "run"


def probe(tracking_uri: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
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
        return one_line(f"cannot reach {url}: {reason}")
