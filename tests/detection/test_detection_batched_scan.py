"""``PdqIndex.query_many``: all of an image's PDQ variants in one pass, identical to a brute-force comparison."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import detection.pdq_index as pdq_index_module
from detection.pdq_index import PdqIndex, pdq_hex_to_words, words_to_pdq_hex
from detection.pdq_scan import BLOCK_ROWS


def brute_force_many(ids: np.ndarray, words: np.ndarray, queries: list[str], t: int) -> list[tuple[int, int]]:
    """Every (entry, smallest distance to any query) within t, by comparing every row with every query."""
    best: dict[int, int] = {}
    for query in queries:
        q = pdq_hex_to_words([query])[:, 0]
        dist = np.bitwise_count(words ^ q[:, None]).sum(axis=0)
        for row in np.flatnonzero(dist <= t):
            entry, d = int(ids[row]), int(dist[row])
            best[entry] = min(d, best.get(entry, 999))
    return sorted(best.items(), key=lambda x: (x[1], x[0]))


def flipped(words: np.ndarray, bits: np.ndarray) -> np.ndarray:
    w = words.copy()
    for bit in bits:
        w[bit // 64] ^= np.uint64(1) << np.uint64(63 - bit % 64)
    return w


def test_batched_scan_matches_brute_force_across_chunks_and_tombstones(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small chunks: the pass crosses chunk boundaries, whole blocks and partial tails.
    monkeypatch.setattr(pdq_index_module, "CHUNK_ROWS", 1000)
    rng = np.random.default_rng(16)
    n = 5_300
    words = rng.integers(0, 2**64, size=(4, n), dtype=np.uint64)
    ids = rng.integers(0, 3_000, size=n).astype(np.int64)  # duplicate ids: an entry stored under several hashes
    index = PdqIndex()
    for start in range(0, n, 901):
        index.add(ids[start : start + 901].tolist(), words_to_pdq_hex(words[:, start : start + 901]))
    removed = set(rng.choice(3_000, size=200, replace=False).tolist())
    index.remove(removed)
    live = ~np.isin(ids, list(removed))
    for k in range(40):
        # Eight variants, each near a different stored row (0-40 flipped bits), as a dihedral set would be.
        variants = [words_to_pdq_hex(flipped(words[:, int(rng.integers(n))],
                                             rng.choice(256, size=int(rng.integers(0, 41)), replace=False))[:, None])[0]
                    for _ in range(8)]
        t = int(rng.choice([0, 8, 16, 31, 40, 70, 95, 96, 97, 256]))  # past 96 the prefix filter passes every row
        expected = brute_force_many(ids[live], words[:, live], variants, t)
        assert index.query_many(variants, t) == expected, (k, t)


def test_exact_threshold_boundaries_and_ties() -> None:
    rng = np.random.default_rng(7)
    base = rng.integers(0, 2**64, size=(4, 2), dtype=np.uint64)
    q_a, q_b = words_to_pdq_hex(base)
    bits = rng.permutation(256)
    rows = {
        # Exactly at the threshold from one variant, one bit past it from the other: in at 31.
        10: flipped(base[:, 0], bits[:31]),
        # One past the threshold from either variant: out at 31.
        11: flipped(base[:, 0], bits[:32]),
        # The same distance (12) from both variants is a tie: reported once, at 12.
        12: flipped(base[:, 0], bits[:12]),
        # An entry stored under two hashes: 20 bits from variant A, 5 from variant B; its best is 5.
        13: flipped(base[:, 0], bits[:20]),
        14: flipped(base[:, 1], bits[:5]),
        # Distance 31 all in the last 160 bits (the prefix is identical): the second look decides.
        15: flipped(base[:, 1], np.arange(96, 127)),
        # Distance 32 in the 96-bit prefix alone: the prefix filter itself rejects it.
        16: flipped(base[:, 1], np.arange(0, 32)),
        # Two entries at the same distance (3) order by id.
        18: flipped(base[:, 1], bits[:3]),
        17: flipped(base[:, 0], bits[:3]),
    }
    # Entry 12 also appears as a hash 12 bits from variant B (a tie across variants).
    tie = flipped(base[:, 1], bits[100:112])
    entry_ids = [*rows, 12, 13]
    stored = np.column_stack([*rows.values(), tie, flipped(base[:, 1], bits[:5])])
    entry_ids[list(rows).index(14)] = 13  # row "14" belongs to entry 13 too
    filler = rng.integers(0, 2**64, size=(4, 3 * BLOCK_ROWS + 5), dtype=np.uint64)  # blocks and a tail
    all_words = np.column_stack([filler, stored])
    all_ids = np.concatenate([np.arange(1000, 1000 + filler.shape[1]), entry_ids]).astype(np.int64)
    index = PdqIndex()
    index.add(all_ids.tolist(), words_to_pdq_hex(all_words))

    at_31 = index.query_many([q_a, q_b], 31)
    assert at_31 == brute_force_many(all_ids, all_words, [q_a, q_b], 31)
    found = dict(at_31)
    assert found[10] == 31 and 11 not in found and found[12] == 12 and found[13] == 5 and found[15] == 31
    assert 16 not in found
    assert [e for e, d in at_31 if d == 3] == [17, 18]
    assert [e for e, _ in at_31].count(12) == 1
    for t in (0, 2, 3, 4, 5, 11, 12, 13, 30, 32, 33):
        assert index.query_many([q_a, q_b], t) == brute_force_many(all_ids, all_words, [q_a, q_b], t), t


def test_same_as_merging_single_queries_and_repeats_are_harmless() -> None:
    rng = np.random.default_rng(3)
    words = rng.integers(0, 2**64, size=(4, 2_000), dtype=np.uint64)
    hexes = words_to_pdq_hex(words)
    index = PdqIndex()
    index.add(list(range(2_000)), hexes)
    variants = [words_to_pdq_hex(flipped(words[:, i], rng.choice(256, size=20, replace=False))[:, None])[0]
                for i in (5, 50, 500, 1500)]
    merged: dict[int, int] = {}
    for v in variants:
        for entry, d in index.query(v, 40):
            merged[entry] = min(d, merged.get(entry, 999))
    expected = sorted(merged.items(), key=lambda x: (x[1], x[0]))
    assert expected and index.query_many(variants, 40) == expected
    # A symmetric image's variants repeat; upper-case hex is the same hash.
    assert index.query_many([*variants, variants[0].upper(), variants[1]], 40) == expected
    assert index.query_many([variants[2]], 40) == index.query(variants[2], 40)
    assert index.query_many([], 40) == []
    assert PdqIndex().query_many(variants, 40) == []


def test_bad_variant_is_named() -> None:
    index = PdqIndex()
    index.add([1], ["0" * 64])
    with pytest.raises(ValueError, match="hash #1"):
        index.query_many(["0" * 64, "xyz"], 31)
    with pytest.raises(ValueError, match="max_distance"):
        index.query_many(["0" * 64], 257)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=150),
    st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=8),
    st.integers(min_value=0, max_value=256),
)
def test_batched_scan_matches_brute_force_hypothesis(hashes: list[bytes], queries: list[bytes], t: int) -> None:
    hexes = [h.hex() for h in hashes]
    ids = np.arange(len(hexes), dtype=np.int64)
    index = PdqIndex()
    index.add(ids.tolist(), hexes)
    words = pdq_hex_to_words(hexes)
    variants = [q.hex() for q in queries]
    assert index.query_many(variants, t) == brute_force_many(ids, words, variants, t)
    # Stored hashes themselves among the queries: distance 0 rows.
    assert index.query_many([*variants, hexes[-1]], t) == brute_force_many(ids, words, [*variants, hexes[-1]], t)
