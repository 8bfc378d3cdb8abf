"""Bank snapshots: each loaded bank written to disk, so a restarted worker is matching in milliseconds.

A snapshot holds one bank's indexes as plain ``.npy`` files (the PDQ index is memory-mapped when read back)
and the point in the bank's change history it reflects: its ``change_seq`` and the largest entry id seen.
The matcher restores it and applies its ordinary delta (rows above that id, tombstones after that
sequence), which brings it up to date. A snapshot that is not of this bank as the database now knows it
(the bank was deleted and recreated, the database went back to an older state, another format, files
missing or cut short) is ignored, and the bank is built from the database as before.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from detection.digest_index import DigestIndex
from detection.loaded_bank import DIGEST_TYPES, Hash64Index, LoadedBank
from detection.pdq_index import PdqIndex
from tipline.logging import get_logger

log = get_logger(__name__)

_FORMAT = "tipline-bank-snapshot"
# 2: crop-resistant segments without texture are no longer indexed; a version 1 snapshot is rebuilt.
_VERSION = 2
_SIXTY_FOUR_BIT = ("phash", "crop")


def bank_identity(bank_id: int, org_id: str, source: str, created_at: object) -> str:
    """What a snapshot and the database row must agree on; a recreated bank gets a new creation time."""
    return f"{bank_id}:{org_id}:{source}:{created_at}"


def save_snapshot(root: Path, bank: LoadedBank, identity: str) -> None:
    """Write ``bank`` under ``root``, replacing its previous snapshot in one rename. Never raises."""
    final = root / str(bank.id)
    work = root / f"{bank.id}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        work.mkdir(parents=True)
        bank.pdq.save(work / "pdq")
        for hash_type, digest_index in bank.digests.items():
            ids, keys = digest_index.to_arrays()
            np.save(work / f"{hash_type}_ids.npy", ids)
            np.save(work / f"{hash_type}_keys.npy", keys)
        for name in _SIXTY_FOUR_BIT:
            hash64: Hash64Index | None = getattr(bank, name)
            if hash64 is not None:
                ids, hashes = hash64.to_arrays()
                np.save(work / f"{name}_ids.npy", ids)
                np.save(work / f"{name}_hashes.npy", hashes)
        meta = {
            "format": _FORMAT, "version": _VERSION, "identity": identity, "change_seq": bank.change_seq,
            "max_id": bank.max_id, "digests": sorted(bank.digests),
            "sixty_four_bit": [name for name in _SIXTY_FOUR_BIT if getattr(bank, name) is not None],
        }
        (work / "meta.json").write_text(json.dumps(meta))
        # The old directory is renamed away, not deleted first: an index memory-mapped from it stays valid.
        retired = root / f"{bank.id}.old-{uuid.uuid4().hex[:8]}"
        if final.exists():
            os.replace(final, retired)
        os.replace(work, final)
        shutil.rmtree(retired, ignore_errors=True)
    except Exception as error:  # noqa: BLE001 - a snapshot not saved costs a slower restart, nothing else
        log.warning("bank_snapshot_not_saved", bank_id=bank.id, error=type(error).__name__)
        shutil.rmtree(work, ignore_errors=True)


def prune_snapshots(root: Path, bank_ids: set[int]) -> None:
    """Delete the snapshots of banks that no longer exist, and leftovers of saves cut short."""
    if not root.is_dir():
        return
    for path in root.iterdir():
        if not (path.name.isdigit() and int(path.name) in bank_ids):
            shutil.rmtree(path, ignore_errors=True)


def load_snapshot(root: Path, identity: str, fresh: LoadedBank) -> LoadedBank | None:
    """``fresh`` (an empty bank with the database's current fields) filled from its snapshot, or None.

    The result's ``change_seq`` and ``max_id`` are the snapshot's: the caller applies the delta since then.
    """
    path = root / str(fresh.id)
    try:
        meta = json.loads((path / "meta.json").read_text())
        if (meta.get("format"), meta.get("version"), meta.get("identity")) != (_FORMAT, _VERSION, identity):
            return None
        if int(meta["change_seq"]) > fresh.change_seq:  # the database is older than the snapshot
            return None
        fresh.change_seq, fresh.max_id = int(meta["change_seq"]), int(meta["max_id"])
        fresh.pdq = PdqIndex.load(path / "pdq")
        for hash_type in meta["digests"]:
            if hash_type not in DIGEST_TYPES:
                return None
            ids, keys = np.load(path / f"{hash_type}_ids.npy"), np.load(path / f"{hash_type}_keys.npy")
            fresh.digests[hash_type] = DigestIndex.from_arrays(hash_type, ids, keys)
        for name in meta["sixty_four_bit"]:
            if name not in _SIXTY_FOUR_BIT:
                return None
            ids, hashes = np.load(path / f"{name}_ids.npy"), np.load(path / f"{name}_hashes.npy")
            setattr(fresh, name, Hash64Index.from_arrays(ids, hashes))
    except FileNotFoundError:
        return None
    except Exception as error:  # noqa: BLE001 - cut short, edited, another version: it is only a cache
        log.warning("bank_snapshot_unreadable", bank_id=fresh.id, error=type(error).__name__)
        return None
    return fresh
