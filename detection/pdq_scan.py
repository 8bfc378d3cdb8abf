"""The compiled inner loop of ``PdqIndex``: one pass over a chunk of stored PDQ hashes for one query.

A chunk holds each hash in three columns: bits 0-63 (uint64), bits 64-95 (uint32) and bits 96-255 (five
uint32 side by side). The scan reads only the first two, 12 of a row's 32 bytes, because it is bound by
memory bandwidth, and sums the Hamming distance of those 96 bits to the query. That sum never exceeds the
full 256-bit distance, so a row whose sum is above the threshold cannot match and the filter is exact. For
random hashes it is about 48 +- 4.9 bits, so at T = 31 about 3 rows in 10,000 survive; only they read the
other 160 bits, which sit together in one cache line.

Rows are scanned in small blocks: a branch-free minimum of the 96-bit distance per block, which LLVM
vectorises (AVX-512 VPOPCNTQ where the CPU has it), and a second look only at the rare blocks whose
minimum is within the threshold. ``nogil`` lets queries from several threads scan in parallel. Compiled
on first use and cached on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Rows per block. At 3e-4 survivors a row, 64 rows leave about 2 % of blocks for the second look;
# longer blocks revisit more rows (128 and 256 measured 8-10 % slower), 32 is no faster.
BLOCK_ROWS = 64


@njit(inline="always")
def _popcount(x: np.uint64) -> np.uint64:
    # The SWAR form, which LLVM recognises and turns into the popcount instruction.
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit(inline="always")
def _prefix_distance(first64: np.ndarray, next32: np.ndarray, r: int, query: np.ndarray) -> np.uint64:
    return _popcount(first64[r] ^ query[0]) + _popcount(np.uint64(next32[r]) ^ query[1])


@njit(inline="always")
def _collect(
    first64: np.ndarray,
    next32: np.ndarray,
    last160: np.ndarray,
    start: int,
    end: int,
    query: np.ndarray,
    limit: np.uint64,
    found_rows: np.ndarray,
    found_distances: np.ndarray,
    found: int,
) -> int:
    """The second look: append rows start..end-1 within ``limit`` to the outputs; returns the new count."""
    for r in range(start, end):
        distance = _prefix_distance(first64, next32, r, query)
        if distance > limit:
            continue
        for column in range(5):
            distance += _popcount(np.uint64(last160[r, column]) ^ query[2 + column])
        if distance <= limit:
            found_rows[found] = r
            found_distances[found] = distance
            found += 1
    return found


@njit(nogil=True, cache=True)
def scan_chunk(
    first64: np.ndarray,
    next32: np.ndarray,
    last160: np.ndarray,
    rows: int,
    query: np.ndarray,
    max_distance: int,
    found_rows: np.ndarray,
    found_distances: np.ndarray,
) -> int:
    """Write every row within ``max_distance`` of the query into ``found_rows``/``found_distances``.

    A chunk's columns: ``first64`` (n,) uint64 holds bits 0-63, ``next32`` (n,) uint32 bits 64-95 and
    ``last160`` (n, 5) uint32 bits 96-255; ``query`` is the (7,) uint64 query split the same way. Only the
    first ``rows`` rows are scanned; the output arrays need room for that many. Returns how many rows
    were written, in row order.
    """
    limit = np.uint64(max_distance)
    found = 0
    whole_blocks = rows - rows % BLOCK_ROWS
    for start in range(0, whole_blocks, BLOCK_ROWS):
        # A minimum, not a count of survivors: the count would spend a mask-to-integer shuffle per lane
        # on the port the popcounts keep busy. The constant trip count lets LLVM unroll the block whole.
        nearest = np.uint64(96)
        for i in range(BLOCK_ROWS):
            nearest = min(nearest, _prefix_distance(first64, next32, start + i, query))
        if nearest <= limit:
            found = _collect(first64, next32, last160, start, start + BLOCK_ROWS, query, limit,
                             found_rows, found_distances, found)
    return _collect(first64, next32, last160, whole_blocks, rows, query, limit, found_rows, found_distances, found)


@njit(inline="always")
def _block_nearest(first64: np.ndarray, next32: np.ndarray, start: int, q0: np.uint64, q1: np.uint64) -> np.uint64:
    """The smallest 96-bit prefix distance of rows start..start+BLOCK_ROWS-1 to one query."""
    nearest = np.uint64(96)
    for i in range(BLOCK_ROWS):
        nearest = min(nearest, _popcount(first64[start + i] ^ q0) + _popcount(np.uint64(next32[start + i]) ^ q1))
    return nearest


@njit(inline="always")
def _collect_many(
    first64: np.ndarray,
    next32: np.ndarray,
    last160: np.ndarray,
    start: int,
    end: int,
    queries: np.ndarray,
    near: np.ndarray,
    limit: np.uint64,
    found_rows: np.ndarray,
    found_distances: np.ndarray,
    found: int,
) -> int:
    """The second look of ``scan_chunk_many``: each row once, at its smallest distance to the ``near`` queries."""
    for r in range(start, end):
        best = limit + np.uint64(1)
        for k in range(queries.shape[0]):
            if not near[k]:
                continue
            distance = _prefix_distance(first64, next32, r, queries[k])
            if distance > limit:
                continue
            for column in range(5):
                distance += _popcount(np.uint64(last160[r, column]) ^ queries[k, 2 + column])
            best = min(best, distance)
        if best <= limit:
            found_rows[found] = r
            found_distances[found] = best
            found += 1
    return found


@njit(nogil=True, cache=True)
def scan_chunk_many(
    first64: np.ndarray,
    next32: np.ndarray,
    last160: np.ndarray,
    rows: int,
    queries: np.ndarray,
    max_distance: int,
    found_rows: np.ndarray,
    found_distances: np.ndarray,
) -> int:
    """``scan_chunk`` for several queries in one pass (an image's 8 dihedral variants): ``queries`` is (m, 7).

    Each block of rows is read from memory once and scanned against every query while it sits in the
    L1 cache; only the queries whose block minimum is within ``max_distance`` get the second look. A row
    within reach of several queries is written once, at its smallest distance. Returns how many rows were
    written, in row order.
    """
    limit = np.uint64(max_distance)
    m = queries.shape[0]
    near = np.zeros(m, dtype=np.bool_)
    found = 0
    whole_blocks = rows - rows % BLOCK_ROWS
    for start in range(0, whole_blocks, BLOCK_ROWS):
        # Queries outermost inside the block: each inner loop is the single-query loop LLVM vectorises.
        any_near = False
        for k in range(m):
            near[k] = _block_nearest(first64, next32, start, queries[k, 0], queries[k, 1]) <= limit
            any_near |= near[k]
        if any_near:
            found = _collect_many(first64, next32, last160, start, start + BLOCK_ROWS, queries, near, limit,
                                  found_rows, found_distances, found)
    near[:] = True
    return _collect_many(first64, next32, last160, whole_blocks, rows, queries, near, limit,
                         found_rows, found_distances, found)
