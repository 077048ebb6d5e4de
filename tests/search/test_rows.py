"""Which rows a search scores: the A / B split and B's top-up from rows the subsample left out."""

from __future__ import annotations

import pytest
import torch

from adass_ray.data.batch import Batch
from adass_ray.errors import ConfigError, DataError
from adass_ray.search.rows import (
    RowPlan,
    search_and_selection_rows,
    split_rows,
    validation_subsample,
)


def numbered(rows: int) -> Batch:
    """``rows`` rows whose only id is the row number, about a third of them positive."""
    ids = torch.arange(rows).view(-1, 1)
    return Batch(ids=ids, multi=(), dense=torch.zeros(rows, 0),
                 label=(torch.arange(rows) % 3 == 0).float())


def row_set(batch: Batch) -> set[int]:
    return set(batch.ids.flatten().tolist())


def test_without_top_up_the_halves_are_the_subsample_split() -> None:
    full = numbered(1000)
    for select_rows in (0, 100):  # 100 <= B's size: nothing to add
        sub, a, b = search_and_selection_rows(full, RowPlan(200, select_rows, 1.0), seed=4)
        want = validation_subsample(full, 200, 4)
        want_a, want_b = split_rows(want, seed=4)
        assert torch.equal(sub.ids, want.ids)
        assert torch.equal(a.ids, want_a.ids) and torch.equal(b.ids, want_b.ids)


def test_top_up_adds_only_rows_outside_the_subsample() -> None:
    full = numbered(1000)
    sub, a, b = search_and_selection_rows(full, RowPlan(200, 500, 1.0), seed=4)
    _, _, plain_b = search_and_selection_rows(full, RowPlan(200, 0, 1.0), seed=4)
    assert len(sub) == 200 and len(a) + len(plain_b) == 200 and len(b) == 500
    assert row_set(plain_b) <= row_set(b)  # B keeps the subsample's half
    assert not row_set(a) & row_set(b)  # the search never scores a selection row
    assert (row_set(b) - row_set(plain_b)).isdisjoint(row_set(sub))
    ids = b.ids.flatten().tolist()
    assert ids == sorted(ids)  # original order kept
    assert torch.equal(b.label, (b.ids.flatten() % 3 == 0).float())  # rows stay whole
    _, a2, b2 = search_and_selection_rows(full, RowPlan(200, 500, 1.0), seed=4)
    _, _, b3 = search_and_selection_rows(full, RowPlan(200, 500, 1.0), seed=5)
    assert torch.equal(b.ids, b2.ids) and torch.equal(a.ids, a2.ids)
    assert not torch.equal(b.ids, b3.ids)  # seeded


def test_top_up_is_capped_by_the_rows_there_are() -> None:
    full = numbered(300)
    sub, a, b = search_and_selection_rows(full, RowPlan(200, 10_000, 1.0), seed=0)
    assert len(b) == 300 - len(a) and row_set(a) | row_set(b) == set(range(300))
    # A validation split no larger than the subsample has nothing to add.
    sub, a, b = search_and_selection_rows(full, RowPlan(300, 10_000, 1.0), seed=0)
    assert len(sub) == 300 and len(a) + len(b) == 300


def test_a_half_without_both_labels_is_refused() -> None:
    full = numbered(1000)
    few = Batch(ids=full.ids[:3], multi=(), dense=full.dense[:3],
                label=torch.tensor([0.0, 0.0, 1.0]))
    with pytest.raises(DataError, match="both labels"):
        search_and_selection_rows(few, RowPlan(3, 100, 1.0), seed=0)


def test_search_share_leaves_a_small_split_to_selection() -> None:
    full = numbered(1000)
    sub, a, b = search_and_selection_rows(full, RowPlan(800, 10_000, 0.4), seed=1)
    assert len(sub) == 400 and len(a) == 200 and len(b) == 800  # 200 of the subsample + 600
    assert not row_set(a) & row_set(b) and row_set(a) | row_set(b) == set(range(1000))
    # A larger split leaves val_rows alone.
    sub, a, b = search_and_selection_rows(numbered(5000), RowPlan(800, 10_000, 0.4), seed=1)
    assert len(sub) == 800 and len(b) == 5000 - len(a)
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match="search_share"):
            search_and_selection_rows(full, RowPlan(800, 0, bad), seed=1)
