"""Benchmark hash-bank import and matcher load/refresh on PostgreSQL and SQLite. A script, not a test:

    .venv/bin/python benchmarks/bench_bank_import.py [--entries 1000000] [--postgres URL] [--skip-sqlite]

Writes a CSV of random entries (PDQ 60 %, MD5 30 %, SHA-1 10 %, all with ids), imports it into a fresh
PostgreSQL database (created and dropped here, like the test suite does) and a fresh SQLite file, then
times a full matcher load, a refresh with nothing to do, a refresh after a small import and after
tombstones, and PDQ match latency. Everything is generated; nothing is read from the network.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detection.banks import BankRepository  # noqa: E402
from detection.digests import Digests  # noqa: E402
from detection.image_hashes import ImageHashes  # noqa: E402
from detection.matcher import BankMatcher  # noqa: E402
from detection.media_hashes import MediaHashes  # noqa: E402
from tipline.db import make_engine, upgrade  # noqa: E402

DEFAULT_POSTGRES = os.environ.get("TIPLINE_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


def write_list(path: Path, entries: int, seed: int, id_prefix: str) -> list[str]:
    """Write a CSV hash list; returns a few of its PDQ hashes to query for."""
    rng = np.random.default_rng(seed)
    kinds = rng.choice(3, size=entries, p=[0.6, 0.3, 0.1])
    raw = rng.integers(0, 256, size=(entries, 32), dtype=np.uint8)
    hexes = [row.tobytes().hex() for row in raw]
    samples: list[str] = []
    with open(path, "w") as f:
        f.write("hash_type,value,id,classification\n")
        for i, (kind, h) in enumerate(zip(kinds.tolist(), hexes, strict=True)):
            if kind == 0:
                f.write(f"pdq,{h},{id_prefix}{i},A1\n")
                samples.append(h)
            elif kind == 1:
                f.write(f"md5,{h[:32]},{id_prefix}{i},A1\n")
            else:
                f.write(f"sha1,{h[:40]},{id_prefix}{i},B1\n")
    # From the end of the list: the refresh step below tombstones some of the first entries.
    return samples[-200:]


@contextmanager
def scratch_postgres(admin_url: str) -> Iterator[str]:
    name = f"tipline_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def media_for(pdq: str) -> MediaHashes:
    image = ImageHashes(pdq=pdq, pdq_quality=100, phash="0" * 16, crop_resistant="0" * 16, width=1, height=1)
    return MediaHashes(digests=Digests(md5="0" * 32, sha1="0" * 40, sha256="0" * 64, size=0), image=image)


def run(label: str, url: str, big: Path, small: Path, samples: list[str]) -> None:
    upgrade(url)
    engine = make_engine(url)
    repo = BankRepository(engine)
    bank = repo.create_bank("bench", "big")
    with open(big) as f:
        lines = sum(1 for _ in f) - 1

    t = time.perf_counter()
    result = repo.import_file(bank, big)
    import_s = time.perf_counter() - t
    print(f"[{label}] import {result.added:,} entries: {import_s:.1f} s ({result.added / import_s:,.0f}/s; "
          f"{lines:,} lines, {result.duplicates} duplicates, {result.malformed_count} malformed)")

    t = time.perf_counter()
    again = repo.import_file(bank, big)
    print(f"[{label}] re-import of the same file (all duplicates: {again.duplicates:,}): "
          f"{time.perf_counter() - t:.1f} s")

    snapshots = Path(tempfile.mkdtemp(prefix="bank-snapshots-"))
    matcher = BankMatcher(engine, record_hits=False, snapshot_dir=snapshots)
    t = time.perf_counter()
    matcher.load()
    print(f"[{label}] matcher full load (and first snapshot): {time.perf_counter() - t:.1f} s, "
          f"{matcher.entry_count():,} entries indexed")

    t = time.perf_counter()
    stats = matcher.refresh()
    print(f"[{label}] refresh, nothing changed: {1000 * (time.perf_counter() - t):.1f} ms")

    added = repo.import_file(bank, small).added
    t = time.perf_counter()
    stats = matcher.refresh()
    print(f"[{label}] refresh after importing {added:,} more: {1000 * (time.perf_counter() - t):.0f} ms "
          f"(+{stats.entries_added:,})")

    removed = repo.delete_by_external_ids(bank, [f"b{i}" for i in range(0, 10_000, 10)])
    t = time.perf_counter()
    stats = matcher.refresh()
    print(f"[{label}] refresh after {removed:,} tombstones: {1000 * (time.perf_counter() - t):.0f} ms "
          f"(-{stats.entries_removed:,})")

    t = time.perf_counter()
    restarted = BankMatcher(engine, record_hits=False, snapshot_dir=snapshots)
    stats = restarted.load()
    print(f"[{label}] matcher restart from its snapshot, catching up on the changes above: "
          f"{time.perf_counter() - t:.2f} s ({stats.banks_restored} banks restored, +{stats.entries_added:,} "
          f"-{stats.entries_removed:,}; {restarted.entry_count():,} entries)")
    shutil.rmtree(snapshots, ignore_errors=True)

    latencies = []
    hits = 0
    for pdq in samples:
        t = time.perf_counter()
        hits += bool(matcher.match("bench", media_for(pdq)))
        latencies.append(time.perf_counter() - t)
    print(f"[{label}] match (PDQ hit, entry rows read from the database): median "
          f"{1000 * statistics.median(latencies):.2f} ms, {hits}/{len(samples)} matched")
    print(f"[{label}] load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other work skews figures)")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="an admin URL: a scratch database is made there")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        big, small = Path(tmp) / "big.csv", Path(tmp) / "small.csv"
        t = time.perf_counter()
        samples = write_list(big, args.entries, seed=1, id_prefix="b")
        write_list(small, 10_000, seed=2, id_prefix="s")
        print(f"generated {args.entries:,} entries in {time.perf_counter() - t:.1f} s "
              f"({big.stat().st_size / 1e6:.0f} MB CSV)")
        if not args.skip_postgres:
            with scratch_postgres(args.postgres) as url:
                run("postgresql", url, big, small, samples)
        if not args.skip_sqlite:
            run("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", big, small, samples)


if __name__ == "__main__":
    main()
