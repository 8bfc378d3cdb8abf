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
# longer blocks revisit more rows, shorter ones spend more on loop overhead (measured 32-128 within 8 %).
BLOCK_ROWS = 64


@njit(inline="always")
def _popcount(x: np.uint64) -> np.uint64:
    # The SWAR form, which LLVM recognises and turns into the popcount instruction.
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit(nogil=True, cache=True)
def _nearest(first64: np.ndarray, next32: np.ndarray, q_first: np.uint64, q_next: np.uint64) -> np.uint64:
    # A min, not a count of survivors: LLVM vectorises both, but the count spends a shuffle per lane
    # turning compare masks into integers, on the port the popcounts already keep busy.
    nearest = np.uint64(96)
    for r in range(first64.size):
        nearest = min(nearest, _popcount(first64[r] ^ q_first) + _popcount(np.uint64(next32[r]) ^ q_next))
    return nearest


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
    q_first, q_next = query[0], query[1]
    found = 0
    for start in range(0, rows, BLOCK_ROWS):
        end = min(start + BLOCK_ROWS, rows)
        if _nearest(first64[start:end], next32[start:end], q_first, q_next) > limit:
            continue
        for r in range(start, end):
            distance = _popcount(first64[r] ^ q_first) + _popcount(np.uint64(next32[r]) ^ q_next)
            if distance > limit:
                continue
            for column in range(5):
                distance += _popcount(np.uint64(last160[r, column]) ^ query[2 + column])
            if distance <= limit:
                found_rows[found] = r
                found_distances[found] = distance
                found += 1
    return found
