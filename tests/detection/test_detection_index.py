from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import detection.pdq_index as pdq_index_module
from detection.digest_index import DigestIndex
from detection.image_hashes import hash_image
from detection.pdq_index import PdqIndex, pdq_hex_to_words, words_to_pdq_hex


def brute_force(ids: np.ndarray, words: np.ndarray, query: str, t: int) -> list[tuple[int, int]]:
    q = pdq_hex_to_words([query])[:, 0]
    dist = np.bitwise_count(words ^ q[:, None]).sum(axis=0)
    best: dict[int, int] = {}
    for row in np.flatnonzero(dist <= t):
        entry, d = int(ids[row]), int(dist[row])
        best[entry] = min(d, best.get(entry, 999))
    return sorted(best.items(), key=lambda x: (x[1], x[0]))


def near(words: np.ndarray, rng: np.random.Generator, flips: int) -> str:
    w = words.copy()
    for bit in rng.choice(256, size=flips, replace=False):
        w[bit // 64] ^= np.uint64(1) << np.uint64(63 - bit % 64)
    return words_to_pdq_hex(w[:, None])[0]


def test_hex_round_trip() -> None:
    rng = np.random.default_rng(0)
    hexes = [rng.bytes(32).hex() for _ in range(10)]
    assert words_to_pdq_hex(pdq_hex_to_words(hexes)) == hexes


@pytest.mark.parametrize("bad", ["abc", "g" * 64, "a" * 63 + " ", "a" * 65, "ab " * 21 + "a", None, 123])
def test_bad_hash_rejected_and_index_unchanged(bad: object) -> None:
    index = PdqIndex()
    with pytest.raises(ValueError):
        index.add([1, 2], ["0" * 64, bad])  # type: ignore[list-item]
    assert len(index) == 0


def test_image_match_near_duplicate_and_removal(make_image, encode_image) -> None:
    img = make_image(11)
    known = hash_image(encode_image(img, quality=95)).pdq
    other = [hash_image(encode_image(make_image(s), quality=95)).pdq for s in range(20, 25)]
    index = PdqIndex()
    index.add([100, 101, 102, 103, 104, 105], [known, *other])

    exact = index.query(known)
    assert exact[0] == (100, 0)
    half = img.resize((img.width // 2, img.height // 2), Image.Resampling.BILINEAR)
    near_dup = hash_image(encode_image(half, quality=75)).pdq
    assert 100 in dict(index.query(near_dup, 31))
    unrelated = hash_image(encode_image(make_image(99), quality=95)).pdq
    assert 100 not in dict(index.query(unrelated, 31))

    assert index.remove([100]) == 1
    assert 100 not in dict(index.query(known, 31))
    assert len(index) == 5 and index.rows == 6  # tombstoned, not rebuilt


def test_matches_brute_force_seeded_with_tombstones(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small chunks so the test crosses chunk boundaries, partial tails and growth.
    monkeypatch.setattr(pdq_index_module, "CHUNK_ROWS", 1000)
    rng = np.random.default_rng(42)
    n = 5_500
    words = rng.integers(0, 2**64, size=(4, n), dtype=np.uint64)
    ids = rng.integers(0, 3_000, size=n).astype(np.int64)  # duplicate ids: an entry with many hashes
    index = PdqIndex()
    for start in range(0, n, 777):  # uneven batches
        index.add(ids[start : start + 777].tolist(), words_to_pdq_hex(words[:, start : start + 777]))
    removed = set(rng.choice(3_000, size=300, replace=False).tolist())
    index.remove(removed)
    live = ~np.isin(ids, list(removed))
    for k in range(60):
        q = near(words[:, int(rng.integers(n))], rng, int(rng.integers(0, 40)))
        t = int(rng.choice([0, 8, 16, 31, 40, 70, 256]))  # 256: every row matches
        assert index.query(q, t) == brute_force(ids[live], words[:, live], q, t), (k, t)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=60),
    st.binary(min_size=32, max_size=32),
    st.integers(min_value=0, max_value=256),
)
def test_matches_brute_force_hypothesis(hashes: list[bytes], query: bytes, t: int) -> None:
    hexes = [h.hex() for h in hashes]
    ids = np.arange(len(hexes), dtype=np.int64)
    index = PdqIndex()
    index.add(ids.tolist(), hexes)
    assert index.query(query.hex(), t) == brute_force(ids, pdq_hex_to_words(hexes), query.hex(), t)
    # Also query one of the stored hashes itself, nudged.
    assert index.query(hexes[0], t) == brute_force(ids, pdq_hex_to_words(hexes), hexes[0], t)


def test_save_load_round_trip_memmap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdq_index_module, "CHUNK_ROWS", 256)
    rng = np.random.default_rng(7)
    n = 1_000
    words = rng.integers(0, 2**64, size=(4, n), dtype=np.uint64)
    hexes = words_to_pdq_hex(words)
    index = PdqIndex()
    index.add(list(range(n)), hexes)
    index.remove([5, 6])
    index.save(tmp_path / "idx")

    loaded = PdqIndex.load(tmp_path / "idx")
    assert len(loaded) == n - 2
    assert isinstance(loaded._chunks[0].first64, np.memmap)
    assert sorted(loaded.iter_entries()) == sorted(index.iter_entries())
    for i in (0, 5, 500, 999):
        assert loaded.query(hexes[i], 31) == index.query(hexes[i], 31)
    # Mutations after loading work and never touch the saved files.
    loaded.remove([0])
    loaded.add([5000], [hexes[0]])
    assert loaded.query(hexes[0], 0) == [(5000, 0)]
    assert PdqIndex.load(tmp_path / "idx").query(hexes[0], 0) == [(0, 0)]
    loaded.compact()
    assert len(loaded) == n - 2 and loaded.rows == n - 2


def test_queries_from_threads_match_single_threaded() -> None:
    # The scan releases the GIL and each thread has its own output buffers.
    rng = np.random.default_rng(9)
    words = rng.integers(0, 2**64, size=(4, 3_000), dtype=np.uint64)
    index = PdqIndex()
    index.add_words(np.arange(3_000), words)
    queries = [near(words[:, i], rng, int(rng.integers(0, 40))) for i in range(0, 3_000, 30)]
    expected = [index.query(q, 40) for q in queries]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            assert list(pool.map(lambda q: index.query(q, 40), queries)) == expected


def test_compaction_triggers_and_preserves_results() -> None:
    rng = np.random.default_rng(3)
    hexes = [rng.bytes(32).hex() for _ in range(400)]
    index = PdqIndex()
    index.add(list(range(400)), hexes)
    index.remove(range(0, 200))  # 50 % dead: compacts automatically
    assert index.rows == 200 and len(index) == 200
    assert index.query(hexes[300], 0) == [(300, 0)]
    assert index.query(hexes[10], 0) == []


def test_negative_ids_rejected() -> None:
    with pytest.raises(ValueError):
        PdqIndex().add([-1], ["0" * 64])


def test_digest_index() -> None:
    index = DigestIndex("md5")
    a, b = "d41d8cd98f00b204e9800998ecf8427e", "0cc175b9c0f1b6a831c399e269772661"
    index.add([1, 2, 3], [a, a.upper(), b])
    assert index.query(a) == [(1, 0), (2, 0)]
    assert index.query("not hex") == []
    assert index.remove([1, 99]) == 1
    assert index.query(a) == [(2, 0)]
    index.remove([2])
    assert index.query(a) == [] and index.query(b) == [(3, 0)]
    with pytest.raises(ValueError):
        index.add([4], ["abc"])
    sha1 = DigestIndex("sha1")
    sha1.add([9], ["da39a3ee5e6b4b0d3255bfef95601890afd80709"])
    assert sha1.query("DA39A3EE5E6B4B0D3255BFEF95601890AFD80709") == [(9, 0)]


def test_load_index_saved_with_other_chunk_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(8)
    hexes = [rng.bytes(32).hex() for _ in range(700)]
    with monkeypatch.context() as patch:
        patch.setattr(pdq_index_module, "CHUNK_ROWS", 128)
        index = PdqIndex()
        index.add(list(range(700)), hexes)
        index.save(tmp_path)
    loaded = PdqIndex.load(tmp_path)  # default chunk size: rebuilt in memory, same answers
    assert len(loaded) == 700
    assert loaded.query(hexes[650], 0) == [(650, 0)]


def test_load_rejects_mismatched_files(tmp_path: Path) -> None:
    index = PdqIndex()
    index.add([1, 2], ["0" * 64, "f" * 64])
    index.save(tmp_path)
    np.save(tmp_path / "entry_ids.npy", np.arange(5, dtype=np.int64))
    with pytest.raises(ValueError, match="do not match"):
        PdqIndex.load(tmp_path)


def test_warm_up_compiles_the_scan_before_any_query() -> None:
    # In a fresh interpreter, as a worker starts: nothing compiled until warm_up, then the scan is ready.
    code = (
        "from detection import pdq_index, pdq_scan\n"
        "assert not pdq_scan.scan_chunk.signatures\n"
        "pdq_index.warm_up()\n"
        "assert pdq_scan.scan_chunk.signatures\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
