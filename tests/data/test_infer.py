"""Schema inference for a CSV / parquet file that comes without a schema."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adass_ray.data.infer import infer_schema, schema_yaml
from adass_ray.data.schema import Schema
from adass_ray.errors import ConfigError


def _csv(path, header, rows):
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _rows(n=300):
    return [
        f"{i % 7},u{i % 40},{i * 1.37 % 101:.2f},{i % 3},{i},s{i * 2 // 3},k,{i % 2}"
        for i in range(n)
    ]


HEADER = "shop_id,user,price,grade,serial,visit,const,Target"


def test_roles_by_name_type_and_cardinality(tmp_path):
    schema, notes = infer_schema(_csv(tmp_path / "a.csv", HEADER, _rows()), "csv")
    assert schema.label == "Target"  # found by name, case-insensitive
    assert schema.categorical == ("shop_id", "user", "grade", "visit")
    assert schema.numeric == ("price",)  # many distinct floats; `grade` has 3 values: a code
    assert "serial" not in schema.feature_columns  # a different integer in every row: a row id
    assert "const" not in schema.feature_columns and "left out" in notes["const"]
    assert schema.min_count == {"visit": 2}  # nearly unique
    assert "id-like name" in notes["shop_id"]
    # the written YAML reads back as the same schema (the user edits it and passes it back)
    path = tmp_path / "schema.yaml"
    path.write_text(schema_yaml(schema, notes, source="a.csv"))
    assert Schema.load(path) == schema


def test_label_option_and_parquet(tmp_path):
    table = pa.table({"a": ["x", "y"] * 100, "n": list(range(200)), "buy": [0, 1] * 100})
    pq.write_table(table, tmp_path / "t.parquet")
    schema, _ = infer_schema(tmp_path / "t.parquet", "parquet", label="buy")
    assert schema.label == "buy" and schema.categorical == ("a",)


@pytest.mark.parametrize(
    ("header", "label", "needle"),
    [
        ("a,b,c", None, "no label column"),
        ("a,b,label", "nope", "--label 'nope' is not a column"),
        ("a,b,rating", "rating", "must hold 0/1"),
    ],
)
def test_unusable_label_is_one_line(tmp_path, header, label, needle):
    path = _csv(tmp_path / "b.csv", header, [f"x{i},{i},{i % 5}" for i in range(50)])
    with pytest.raises(ConfigError, match=needle) as e:
        infer_schema(path, "csv", label=label)
    assert "\n" not in str(e.value)
