"""Segments parsed ahead (data/segments.py) give the rows and values of one read_csv."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from adass_ray.data import segments
from adass_ray.data.segments import iter_segments


def _file(tmp_path, *, header: bool, end_newline: bool):
    lines = ['"id",name,x,t'] if header else []
    for i in range(700):
        lines.append(f"{i},n{i % 13},{'' if i % 7 == 0 else i * 0.5},{i * 3}")
        if i % 150 == 0:
            lines.append("")  # blank lines are skipped, as read_csv skips them
    path = tmp_path / "f.csv"
    path.write_text("\ufeff" * header + "\n".join(lines) + ("\n" if end_newline else ""))
    return path


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("end_newline", [True, False])
def test_segments_match_one_read_csv(tmp_path, monkeypatch, header, end_newline):
    monkeypatch.setattr(segments, "SEGMENT_BLOCKS", 2)  # many segments, parsed out of step
    path = _file(tmp_path, header=header, end_newline=end_newline)
    names = [] if header else ["id", "name", "x", "t"]
    read = pacsv.ReadOptions(column_names=names, block_size=1 << 10)
    parse = pacsv.ParseOptions(delimiter=",")
    # "t" is left to inference: fixed from the first segment on
    convert = pacsv.ConvertOptions(column_types={"name": pa.string(), "x": pa.float64()},
                                   include_columns=["name", "x", "t"], null_values=[""],
                                   strings_can_be_null=True)
    batches = list(iter_segments(path, read, parse, convert))
    assert len(batches) > 10
    want = pacsv.read_csv(path, read_options=pacsv.ReadOptions(column_names=names),
                          parse_options=parse, convert_options=convert)
    assert pa.Table.from_batches(batches).equals(want)
