"""The batched PDQ scan's figures for ``bench_detection.py``: an image's 8 dihedral variants in one pass.

For each bank size: a bank of random PDQ hashes with near-copies (0-30 flipped bits) of some synthetic
images' variants planted in it, then per image, interleaved so a noisy neighbour slows all three alike:

* single: ``PdqIndex.query`` of the image's original hash (what one variant costs);
* batched: ``PdqIndex.query_many`` of all 8 variants (what the matcher now runs);
* sequential: 8 ``query`` calls, one per variant (what the matcher ran before).

Then bytes per entry, and the batched answers compared with a numpy brute force over every row on a sample
of images. With python-threatexchange importable (it is not a dependency), its PDQIndex at the same size.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import numpy as np

from detection.image_hashes import hash_image
from detection.pdq_index import PdqIndex, pdq_hex_to_words, words_to_pdq_hex

THRESHOLD = 31


def image_variants(n_images: int, make_jpeg: Callable[[int], bytes]) -> list[tuple[str, ...]]:
    """The 8 dihedral PDQ hashes of synthetic images, as the detection activity computes them."""
    return [hash_image(make_jpeg(1000 + seed), dihedral=True).pdq_dihedral for seed in range(n_images)]


def planted_bank(n: int, variants: list[tuple[str, ...]], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(4, n) random words with a near-copy of one variant of every other image at a random row."""
    words = rng.integers(0, 2**64, size=(4, n), dtype=np.uint64)
    for i, image in enumerate(variants[::2]):
        w = pdq_hex_to_words([image[i % 8]])[:, 0]
        for bit in rng.choice(256, size=int(rng.integers(0, 31)), replace=False):
            w[bit // 64] ^= np.uint64(1) << np.uint64(63 - bit % 64)
        words[:, int(rng.integers(n))] = w
    return words, np.arange(n, dtype=np.int64)


def brute_force_many(words: np.ndarray, ids: np.ndarray, queries: tuple[str, ...], t: int) -> list[tuple[int, int]]:
    best: dict[int, int] = {}
    for query in queries:
        q = pdq_hex_to_words([query])[:, 0]
        dist = np.zeros(words.shape[1], dtype=np.int64)
        for w in range(4):  # one word at a time bounds the temporaries to 8 bytes a row
            dist += np.bitwise_count(words[w] ^ q[w])
        for row in np.flatnonzero(dist <= t):
            best[int(ids[row])] = min(int(dist[row]), best.get(int(ids[row]), 999))
    return sorted(best.items(), key=lambda x: (x[1], x[0]))


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_dihedral(n: int, variants: list[tuple[str, ...]], n_checked: int) -> None:
    load = os.getloadavg()
    print(f"== batched dihedral scan: {n:,} entries, {len(variants)} images x 8 variants, T = {THRESHOLD} "
          f"(load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
    rng = np.random.default_rng(n)
    words, ids = planted_bank(n, variants, rng)
    index = PdqIndex()
    for start in range(0, n, 1_000_000):
        index.add_words(ids[start : start + 1_000_000], words[:, start : start + 1_000_000])
    print(f"memory: {index.nbytes / n:.1f} B/entry (hashes and entry ids, incl. the partly filled last chunk)")
    for image in variants[:3]:  # warm caches and the compiled scans
        index.query(image[0], THRESHOLD)
        index.query_many(image, THRESHOLD)

    rounds = []
    for _ in range(3):
        single, batched, sequential, hits = [], [], [], 0
        for image in variants:
            single.append(_timed(lambda image=image: index.query(image[0], THRESHOLD)))
            batched.append(_timed(lambda image=image: index.query_many(image, THRESHOLD)))
            sequential.append(_timed(lambda image=image: [index.query(v, THRESHOLD) for v in image]))
            hits += len(index.query_many(image, THRESHOLD))
        rounds.append((statistics.median(batched), statistics.median(single), statistics.median(sequential)))
    for batched_s, single_s, sequential_s in sorted(rounds, key=lambda r: r[0] / r[1]):
        print(f"8-variant lookup: batched {batched_s * 1e3:.2f} ms, single variant {single_s * 1e3:.2f} ms "
              f"({batched_s / single_s:.2f}x single; target <= 2x), 8 sequential lookups {sequential_s * 1e3:.2f} ms "
              f"(batched {sequential_s / batched_s:.2f}x faster)")
    print(f"{hits} matching entries over {len(variants)} images")

    checked = variants[:n_checked]
    for image in checked:
        assert index.query_many(image, THRESHOLD) == brute_force_many(words, ids, image, THRESHOLD), \
            "batched scan differs from brute force"
    print(f"exactness: {len(checked)} images' 8-variant lookups identical to brute force over all {n:,} rows")
    bench_pytx(words, variants)


def bench_pytx(words: np.ndarray, variants: list[tuple[str, ...]]) -> None:
    """python-threatexchange's PDQIndex over the same bank, when it is installed (optional, not a dependency)."""
    try:
        from threatexchange.signal_type.pdq.pdq_index import PDQIndex  # type: ignore[import-not-found]
    except ImportError:
        print("python-threatexchange not installed: no PDQIndex comparison (pip install threatexchange faiss-cpu)")
        return
    n = words.shape[1]
    t0 = time.perf_counter()
    hexes = words_to_pdq_hex(words)
    index = PDQIndex.build(zip(hexes, range(n), strict=True))
    del hexes
    print(f"pytx PDQIndex: built in {time.perf_counter() - t0:.1f} s")
    for image in variants[:3]:
        index.query(image[0])
    single = statistics.median(_timed(lambda image=image: index.query(image[0])) for image in variants)
    sequential = statistics.median(_timed(lambda image=image: [index.query(v) for v in image]) for image in variants)
    print(f"pytx PDQIndex: single variant {single * 1e3:.2f} ms, "
          f"8 variants one after another {sequential * 1e3:.2f} ms")
