"""Candidate embeddings: validation, per-row routing, pooling and where gradients go."""

from __future__ import annotations

import pytest
import torch

from adass_ray.errors import ConfigError
from adass_ray.model.embeddings import CandidateEmbeddings, validate_sizes

# Feature-map order: categorical, multi-valued, numeric (bucketized), categorical, categorical.
VOCAB = (7, 6, 5, 11, 3)
MULTI = (False, True, False, False, False)
SIZES = (0, 1, 2, 8, 16)  # drop, the small sizes, and a size equal to d
B, D, L = 23, 16, 4


def make_inputs(seed: int = 0, b: int = B) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.stack(
        [
            torch.randint(0, v, (b,), generator=g)
            for v, m in zip(VOCAB, MULTI, strict=True)
            if not m
        ],
        1,
    )
    multi = torch.randint(-1, VOCAB[1], (b, L), generator=g)
    multi[0] = -1  # an all-padding row
    multi[1] = torch.tensor([0, -1, 0, 2])  # OOV id 0 is looked up (twice), padding skipped
    return ids, (multi,)


def make_emb(layout: str = "separate", sizes: tuple[int, ...] = SIZES) -> CandidateEmbeddings:
    torch.manual_seed(0)
    emb = CandidateEmbeddings(
        vocab_sizes=VOCAB, multi_valued=MULTI, candidate_sizes=sizes, d=D, layout=layout
    )
    with torch.no_grad():  # non-trivial LayerNorm affine, so that mixing candidates up would show
        for p in (*emb.ln_weight.values(), *emb.ln_bias.values()):
            p.normal_()
    return emb


def reference(
    emb: CandidateEmbeddings, ids: torch.Tensor, multi: tuple[torch.Tensor, ...], arch: torch.Tensor
) -> torch.Tensor:
    """Row-by-row, field-by-field definition of the unified output."""
    out = torch.zeros(arch.shape[0], len(VOCAB), D)
    for i in range(arch.shape[0]):
        col = 0
        for f, is_multi in enumerate(MULTI):
            k = int(arch[i, f])
            if emb.candidate_sizes[k] > 0:
                table = emb.table(f, k)
                if is_multi:
                    x = multi[0][i][multi[0][i] >= 0]
                    v = table[x].mean(0) if len(x) else torch.zeros(table.shape[1])
                else:
                    v = table[ids[i, col]]
                w, g, bias = emb.unifier(f, k)
                out[i, f] = torch.nn.functional.layer_norm(v @ w, (D,), g, bias)
            col += not is_multi
    return out


@pytest.mark.parametrize(
    ("sizes", "d"),
    [
        ((8, 4), 8),
        ((4, 4), 4),
        ((4, 0, 8), 8),
        ((0,), 4),
        ((-4, 8), 8),
        ((), 4),
        ((4,), 0),
        ((4, 8), 4),
    ],
)
def test_bad_sizes(sizes: tuple[int, ...], d: int) -> None:
    with pytest.raises(ConfigError):
        validate_sizes(sizes, d)


def test_good_sizes_and_bad_layout() -> None:
    assert validate_sizes([0, 4, 8], 16) == (0, 4, 8)
    with pytest.raises(ConfigError, match="separate, nested"):
        CandidateEmbeddings(
            vocab_sizes=VOCAB, multi_valued=MULTI, candidate_sizes=(4,), d=4, layout="tied"
        )


@pytest.mark.parametrize("layout", ["separate", "nested"])
@pytest.mark.parametrize(("chunk", "b"), [(1, B), (128, B), (128, 150)])
def test_per_row_matches_reference(layout: str, chunk: int, b: int) -> None:
    emb = make_emb(layout)
    emb.chunk = chunk  # B = 150 routes through chunks of 16 slots with padding
    ids, multi = make_inputs(b=b)
    arch = torch.randint(0, len(SIZES), (b, len(VOCAB)), generator=torch.Generator().manual_seed(1))
    out = emb(ids, multi, arch)
    assert out.shape == (b, len(VOCAB), D)
    assert torch.allclose(out, reference(emb, ids, multi, arch), atol=1e-5)
    assert torch.all(out[arch == 0] == 0)  # dropped fields are exact zeros
    # The all-padding multi-valued row unifies a zero vector: LN(0) is the LN bias.
    k = int(arch[0, 1])
    if k:
        assert torch.allclose(out[0, 1], emb.unifier(1, k)[2], atol=1e-6)


def test_row_alone_equals_row_in_batch() -> None:
    emb = make_emb()
    ids, multi = make_inputs()
    arch = torch.randint(0, len(SIZES), (B, len(VOCAB)), generator=torch.Generator().manual_seed(2))
    out = emb(ids, multi, arch)
    for i in range(B):
        alone = emb(ids[i : i + 1], (multi[0][i : i + 1],), arch[i : i + 1])
        assert torch.allclose(alone[0], out[i], atol=1e-6)


def test_all_candidates_matches_fixed_archs() -> None:
    emb = make_emb("nested")
    ids, multi = make_inputs()
    every = emb.all_candidates(ids, multi)
    assert every.shape == (B, len(VOCAB), len(SIZES), D)
    for k in range(len(SIZES)):
        fixed = emb(ids, multi, torch.full((B, len(VOCAB)), k))
        assert torch.allclose(every[:, :, k], fixed, atol=1e-5)


@pytest.mark.parametrize("layout", ["separate", "nested"])
def test_gradients_reach_only_used_candidates(layout: str) -> None:
    emb = make_emb(layout, sizes=(4, 8, 12, 16))
    ids, multi = make_inputs()
    # Candidate 3 (size 16) is never used; field 0 only ever uses candidate 1.
    arch = torch.randint(0, 3, (B, len(VOCAB)), generator=torch.Generator().manual_seed(3))
    arch[:, 0] = 1
    emb(ids, multi, arch).pow(2).sum().backward()
    used = {(f, int(k)) for f in range(len(VOCAB)) for k in arch[:, f].unique()}
    for f in range(len(VOCAB)):
        for k, s in enumerate(emb.candidate_sizes):
            key = f"s{s}"
            grads = [
                p.grad[f] if p.grad is not None else torch.zeros(1)
                for p in (emb.proj[key], emb.ln_weight[key], emb.ln_bias[key])
            ]
            if (f, k) in used:
                assert all(g.abs().sum() > 0 for g in grads), (f, k)
            else:
                assert all(torch.all(g == 0) for g in grads), (f, k)
    if layout == "separate":
        assert emb.tables["s16"].grad is None  # a size nobody used takes no part at all
        lo = sum(VOCAB[:0])
        assert torch.all(emb.tables["s4"].grad[lo : lo + VOCAB[0]] == 0)  # field 0 never at size 4
        assert emb.tables["s8"].grad[lo : lo + VOCAB[0]].abs().sum() > 0
    else:
        # Nested: only the first s columns of the largest candidate in use get gradient.
        assert torch.all(emb.tables["shared"].grad[:, 12:] == 0)


def test_nested_candidates_are_prefixes_of_one_table() -> None:
    emb = make_emb("nested", sizes=(4, 8))
    assert set(emb.tables) == {"shared"}
    assert emb.table(3, 0).data_ptr() == emb.table(3, 1).data_ptr()
    assert torch.equal(emb.table(3, 0), emb.table(3, 1)[:, :4])
    assert sum(t.numel() for t in emb.tables.values()) == sum(VOCAB) * 8
