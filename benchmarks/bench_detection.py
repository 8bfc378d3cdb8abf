"""Benchmark the detection package on synthetic data. A script, not a test:

    .venv/bin/python benchmarks/bench_detection.py [--entries 1000000 10000000] [--only dihedral]

Prints, at each ``--entries`` size, an image's 8-variant (dihedral) lookup in one batched pass against a
single-variant lookup, with bytes per entry and agreement with brute force (``dihedral_scan.py``). Then, at
``--index-entries``, PDQ lookup latency against random entries (results checked identical to brute force on a sample),
memory per entry, index save/load time, hashing throughput for synthetic 1024x1024 JPEGs, the fast
path's PDQ drift, and hash-file parse time. Everything is generated; nothing is read from the network.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numba import njit
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.dihedral_scan import bench_dihedral, image_variants  # noqa: E402
from detection.bank_file import HashEntry, iter_hash_entries  # noqa: E402
from detection.digests import digest_bytes  # noqa: E402
from detection.image_hashes import hash_image, open_image_safely, pdq_distance, pdq_of_luma  # noqa: E402
from detection.pdq_index import PdqIndex, pdq_hex_to_words, words_to_pdq_hex  # noqa: E402


def synthetic_jpeg(seed: int, side: int = 1024) -> bytes:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(24, 24, 3), dtype=np.uint8)
    img = Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(15):
        x, y = (int(v) for v in rng.integers(0, side, 2))
        draw.ellipse((x, y, x + int(rng.integers(20, 300)), y + int(rng.integers(20, 300))),
                     fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return out.getvalue()


def brute_force(words: np.ndarray, ids: np.ndarray, query: str, t: int) -> list[tuple[int, int]]:
    q = pdq_hex_to_words([query])[:, 0]
    dist = np.bitwise_count(words ^ q[:, None]).sum(axis=0)
    rows = np.flatnonzero(dist <= t)
    return sorted(((int(ids[r]), int(dist[r])) for r in rows), key=lambda x: (x[1], x[0]))


@njit(nogil=True)
def _read_columns(first64: np.ndarray, next32: np.ndarray) -> np.uint64:
    acc = np.uint64(0)
    for r in range(first64.size):
        acc ^= first64[r] ^ np.uint64(next32[r])
    return acc


def scan_floor(index: PdqIndex) -> float:
    """Median time to only read the columns a query scans (12 of 32 bytes a row): the memory-bandwidth floor."""
    columns = [(chunk.first64[:used], chunk.next32[:used]) for chunk, used in index._chunks_in_use()]
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        for first64, next32 in columns:
            _read_columns(first64, next32)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_index(n: int, n_queries: int, n_checked: int) -> None:
    print(f"== PDQ index: {n:,} random entries, T = 31")
    rng = np.random.default_rng(2026)
    words = rng.integers(0, 2**64, size=(4, n), dtype=np.uint64)
    ids = np.arange(n, dtype=np.int64)
    hexes = words_to_pdq_hex(words)

    t0 = time.perf_counter()
    index = PdqIndex()
    for start in range(0, n, 100_000):  # the way an import feeds it: batches of parsed hex strings
        index.add(ids[start : start + 100_000], hexes[start : start + 100_000])
    build = time.perf_counter() - t0
    print(f"build from hex: {build:.2f} s; memory {index.nbytes / n:.1f} B/entry "
          f"({index.nbytes / 2**20:.1f} MiB incl. the partly filled last chunk)")

    # Half the queries are near-duplicates of stored entries (0-40 flipped bits), half random.
    queries = []
    for k in range(n_queries):
        if k % 2:
            queries.append(rng.bytes(32).hex())
            continue
        w = words[:, int(rng.integers(n))].copy()
        for bit in rng.choice(256, size=int(rng.integers(0, 41)), replace=False):
            w[bit // 64] ^= np.uint64(1) << np.uint64(63 - bit % 64)
        queries.append(words_to_pdq_hex(w[:, None])[0])

    for q in queries[:20]:  # warm caches
        index.query(q)
    # Three rounds, each beside a measurement of the machine's floor (reading the scanned columns and
    # nothing else): other tenants of a shared host slow whole rounds down, and the floor shows how much.
    rounds = []
    for _ in range(3):
        latencies, hits = [], 0
        for q in queries:
            t0 = time.perf_counter()
            hits += len(index.query(q, 31))
            latencies.append(time.perf_counter() - t0)
        latencies.sort()
        rounds.append((statistics.median(latencies), latencies[int(0.99 * (len(latencies) - 1))],
                       len(latencies) / sum(latencies), scan_floor(index)))
    for median, p99, per_second, floor in sorted(rounds):
        print(f"query: median {median * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms, {per_second:,.0f} lookups/s on one "
              f"core (floor: reading the scanned columns alone {floor * 1e3:.3f} ms)")
    print(f"{hits} matches in {n_queries} queries")

    for q in queries[:n_checked]:
        assert index.query(q, 31) == brute_force(words, ids, q, 31), "index differs from brute force"
    print(f"exactness: {n_checked} queries identical to brute force")

    removed = rng.choice(n, size=1000, replace=False)
    t0 = time.perf_counter()
    index.remove(removed.tolist())
    print(f"remove 1,000 entries (tombstones): {(time.perf_counter() - t0) * 1e3:.1f} ms")

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        index.save(tmp)
        saved = time.perf_counter() - t0
        t0 = time.perf_counter()
        loaded = PdqIndex.load(tmp)
        load = time.perf_counter() - t0
        t0 = time.perf_counter()
        first = loaded.query(queries[0])
        first_query = time.perf_counter() - t0
        assert first == index.query(queries[0])
        lat = []
        for q in queries[:200]:
            t0 = time.perf_counter()
            loaded.query(q)
            lat.append(time.perf_counter() - t0)
        print(f"save {saved:.2f} s; load (memory-mapped) {load * 1e3:.1f} ms; first query after load "
              f"{first_query * 1e3:.1f} ms; median after load {statistics.median(lat) * 1e3:.3f} ms")
        del loaded


def bench_hashing(n_images: int) -> None:
    print(f"== hashing {n_images} synthetic 1024x1024 JPEGs (one process)")
    images = [synthetic_jpeg(seed) for seed in range(n_images)]
    for data in images[:3]:
        hash_image(data)

    def rate(fn) -> str:  # noqa: ANN001
        # Best and worst of three rounds, as timeit does: other tenants of a shared host only ever slow a
        # round down, so the best round is the code's own speed and the spread shows the interference.
        rounds = []
        for _ in range(3):
            t0 = time.perf_counter()
            for data in images:
                fn(data)
            rounds.append(len(images) / (time.perf_counter() - t0))
        return f"{max(rounds):.0f} (worst round {min(rounds):.0f})"

    def md5_sha1_pdq(data: bytes) -> None:  # the first half of hash_media, through the same functions
        digest_bytes(data)
        with open_image_safely(data, mode="L")[0] as luma:
            pdq_of_luma(luma)

    print(f"MD5+SHA-1+SHA-256+PDQ (fast path, the core of hash_media): {rate(md5_sha1_pdq)} images/s")
    print(f"hash_image (PDQ+pHash+crop-resistant, fast path): {rate(hash_image)} images/s")
    print(f"hash_image dihedral=True: {rate(lambda d: hash_image(d, dihedral=True))} images/s")
    print(f"hash_image fast=False (full-resolution PDQ): {rate(lambda d: hash_image(d, fast=False))} images/s")
    drift = [pdq_distance(hash_image(d).pdq, hash_image(d, fast=False).pdq) for d in images]
    print(f"fast-path PDQ drift vs full resolution: median {statistics.median(drift)}, max {max(drift)} bits")


def bench_parse(n_lines: int) -> None:
    print(f"== parsing a {n_lines:,}-line hash file")
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "list.csv"
        pdq = [rng.bytes(32).hex() for _ in range(n_lines // 2)]
        md5 = [rng.bytes(16).hex() for _ in range(n_lines - n_lines // 2)]
        with open(path, "w") as f:
            f.write("hash_type,value,id,classification\n")
            for i, h in enumerate(pdq):
                f.write(f"pdq,{h},{i},A1\n")
            for i, h in enumerate(md5):
                f.write(f"md5,{h},{i + len(pdq)},B1\n")
        t0 = time.perf_counter()
        good = sum(isinstance(item, HashEntry) for item in iter_hash_entries(path))
        elapsed = time.perf_counter() - t0
        print(f"CSV: {elapsed:.2f} s ({n_lines / elapsed:,.0f} lines/s), {good:,} entries")
        jpath = Path(tmp) / "list.jsonl"
        with open(jpath, "w") as f:
            for i, h in enumerate(pdq):
                f.write(f'{{"hash_type":"pdq","value":"{h}","id":{i}}}\n')
        t0 = time.perf_counter()
        good = sum(isinstance(item, HashEntry) for item in iter_hash_entries(jpath))
        elapsed = time.perf_counter() - t0
        print(f"JSON lines: {elapsed:.2f} s for {len(pdq):,} lines ({len(pdq) / elapsed:,.0f} lines/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, nargs="+", default=[1_000_000, 10_000_000],
                        help="bank sizes for the batched dihedral scan")
    parser.add_argument("--dihedral-images", type=int, default=60, help="images looked up with 8 variants each")
    parser.add_argument("--dihedral-checked", type=int, default=5, help="images compared with brute force")
    parser.add_argument("--only", choices=["dihedral"], help="run only the batched dihedral scan")
    parser.add_argument("--index-entries", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--checked", type=int, default=100, help="queries compared with brute force")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    variants = image_variants(args.dihedral_images, synthetic_jpeg)
    for n in args.entries:
        bench_dihedral(n, variants, args.dihedral_checked)
    if args.only == "dihedral":
        return
    bench_index(args.index_entries, args.queries, args.checked)
    bench_hashing(args.images)
    bench_parse(args.lines)


if __name__ == "__main__":
    main()
