"""Perceptual hashing in worker processes of its own, so it never holds the worker's GIL.

Decoding an image and computing its PDQ, pHash and dihedral variants is CPU-bound Python and C that holds the
GIL for long stretches; on the worker's threads it delays the event loop that answers queries, runs workflow
tasks and sends heartbeats (``benchmarks/bench_hashing_pool.py`` measures it; README, "Task queues"). Here
the detection activities stay thread activities (they keep the banks loaded once, in the worker, and match
there) and send only the hashing to a pool of processes, which read the evidence from the store themselves:
only the evidence reference goes over, and only the hashes come back.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from temporalio.exceptions import ApplicationError

from models.case import EvidenceRef
from tipline.evidence import EvidenceStore
from tipline.logging import get_logger
from tipline.settings import Settings

log = get_logger(__name__)
_store: EvidenceStore | None = None


def _start_hashing_process(settings: Settings, worker_pid: int) -> None:
    """Runs once in each pool process: the store and the hashing libraries are ready before the first item."""
    global _store
    # Ctrl-C reaches the whole process group; the worker stops the pool itself once running activities finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with_the_worker, args=(worker_pid,), name="exit-with-worker", daemon=True).start()
    _store = EvidenceStore.from_settings(settings)
    import detection.media_hashes  # noqa: F401 - numpy, PIL and the hashers load here, not on the first item


def _exit_with_the_worker(worker_pid: int) -> None:
    # A worker killed outright (SIGKILL, the OOM killer) cannot stop its pool: without this its processes lived on,
    # each holding the hashing libraries' memory, one set more for every restart.
    while os.getppid() == worker_pid:
        time.sleep(1.0)
    os._exit(0)


def hash_evidence(evidence: EvidenceRef, dihedral: bool) -> bytes:
    """The item's hashes as JSON (MediaHashes is a pydantic model: JSON crosses the process boundary cheaply)."""
    from detection.digests import Digests
    from detection.media_hashes import hash_media_stream

    assert _store is not None, "hash_evidence runs in a pool process started by HashingPool"
    # The digests are the evidence's own: the store checked them when it sealed the bytes.
    digests = Digests(md5=evidence.md5, sha1=evidence.sha1, sha256=evidence.sha256, size=evidence.size)
    with _store.open(evidence.sha256) as media:
        return hash_media_stream(media, digests, dihedral=dihedral).model_dump_json().encode()


class HashingPool:
    """A process pool that starts again if one of its processes dies (out of memory, killed)."""

    def __init__(self, settings: Settings, processes: int) -> None:
        self.settings = settings
        self.processes = processes
        self._lock = threading.Lock()
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        # spawn, not fork: the worker has threads (Temporal's core among them) that a forked child would inherit
        # in whatever state they were.
        return ProcessPoolExecutor(max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_hashing_process, initargs=(self.settings, os.getpid()))

    def hash(self, evidence: EvidenceRef, *, dihedral: bool, while_waiting: Callable[[], None] | None = None,
             every: float = 5.0) -> bytes:
        """The item's hashes from a pool process; ``while_waiting`` runs every ``every`` seconds until they come
        (an activity's heartbeat, so a long video keeps its attempt alive and a dead worker is noticed soon)."""
        with self._lock:
            executor = self._executor
        try:
            future = executor.submit(hash_evidence, evidence, dihedral)
            while True:
                try:
                    return future.result(timeout=every)
                except TimeoutError:
                    if while_waiting is not None:
                        while_waiting()
        except BrokenProcessPool:
            with self._lock:
                if self._executor is executor:
                    log.warning("detection.hashing_pool_restarted")
                    self._executor = self._new_executor()
            # Retryable: the next attempt gets the new pool.
            raise ApplicationError("a hashing process died; the item is hashed again") from None

    def warm_up(self) -> None:
        """Start every process now (each loads the hashing libraries), not when the first items arrive."""
        with self._lock:
            executor = self._executor
        for future in [executor.submit(_ready) for _ in range(self.processes)]:
            future.result()

    def pids(self) -> list[int]:
        with self._lock:
            return [process.pid for process in self._executor._processes.values() if process.pid is not None]

    def shutdown(self) -> None:
        with self._lock:
            self._executor.shutdown(wait=True, cancel_futures=True)


def _ready() -> bool:
    return _store is not None
