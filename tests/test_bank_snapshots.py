"""Matcher snapshots on PostgreSQL: a restarted matcher reads its banks from disk, catches up on what changed
meanwhile, and matches exactly as one built from the database; a snapshot that does not fit is ignored."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

import detection.matcher as matcher_module
from detection.banks import BankRepository, NewEntry
from detection.matcher import BankMatch, BankMatcher
from detection.media_hashes import MediaHashes, hash_media
from detection.pdq_index import words_to_pdq_hex
from tipline.synthetic import synthetic_image


def _org() -> str:
    return f"snap-{uuid.uuid4().hex[:12]}"


def _random_pdq(rng: np.random.Generator, n: int) -> list[str]:
    return words_to_pdq_hex(rng.integers(0, 2**64, size=(4, n), dtype=np.uint64))


def _summary(matches: list[BankMatch]) -> list[tuple[str, str | None, int]]:
    return sorted((m.hash_type, m.external_id, m.distance) for m in matches)


def _fresh_matcher(engine: Engine, snapshot_dir: Path | None) -> BankMatcher:
    return BankMatcher(engine, record_hits=False, snapshot_dir=snapshot_dir)


def test_a_restart_restores_banks_and_applies_what_changed_meanwhile(engine: Engine, tmp_path: Path) -> None:
    repo, org, rng = BankRepository(engine), _org(), np.random.default_rng(5)
    kept, removed_later, added_later = (hash_media(synthetic_image(seed)) for seed in (501, 502, 503))
    assert kept.image and removed_later.image and added_later.image
    bank = repo.create_bank(org, "list")
    filler = [NewEntry("pdq", h, f"filler-{i}", None) for i, h in enumerate(_random_pdq(rng, 3_000))]
    repo.add_entries(bank, [
        *filler,
        NewEntry("pdq", kept.image.pdq, "kept", "A1"), NewEntry("md5", kept.digests.md5, "kept-md5", "A1"),
        NewEntry("pdq", removed_later.image.pdq, "removed", "A1"),
    ])
    own = repo.get_or_create_bank(org, "own reports", source="own_reports")
    repo.add_reported_media(org, kept, external_id="report-1", classification="A1")

    first = _fresh_matcher(engine, tmp_path)
    assert first.load().banks_restored == 0
    assert (tmp_path / str(bank.id) / "meta.json").exists() and (tmp_path / str(own.id) / "meta.json").exists()

    # While no matcher runs: one entry removed, one added.
    assert repo.delete_by_external_ids(bank, ["removed"]) == 1
    repo.add_entries(bank, [NewEntry("pdq", added_later.image.pdq, "added", "A1")])

    restarted = _fresh_matcher(engine, tmp_path)
    stats = restarted.load()
    assert stats.banks_restored >= 2 and stats.entries_added >= 1 and stats.entries_removed >= 1

    from_database = _fresh_matcher(engine, None)
    from_database.load()
    for media in (kept, removed_later, added_later, hash_media(synthetic_image(504))):
        assert _summary(restarted.match(org, media)) == _summary(from_database.match(org, media))
    assert {m.external_id for m in restarted.match(org, kept)} >= {"kept", "kept-md5", "report-1"}
    assert restarted.match(org, removed_later) == []
    assert [m.external_id for m in restarted.match(org, added_later)] == ["added"]


def test_a_snapshot_of_another_bank_state_is_ignored(engine: Engine, tmp_path: Path) -> None:
    repo, org = BankRepository(engine), _org()
    media: MediaHashes = hash_media(synthetic_image(511))
    assert media.image
    bank = repo.create_bank(org, "list")
    repo.add_entries(bank, [NewEntry("pdq", media.image.pdq, "e1", "A1")])
    _fresh_matcher(engine, tmp_path).load()
    meta_path = tmp_path / str(bank.id) / "meta.json"
    meta = json.loads(meta_path.read_text())

    # A snapshot newer than the database (restored from a backup, say) must not be trusted.
    meta_path.write_text(json.dumps({**meta, "change_seq": meta["change_seq"] + 1_000}))
    matcher = _fresh_matcher(engine, tmp_path)
    assert matcher.load().banks_loaded >= 1
    assert [m.external_id for m in matcher.match(org, media)] == ["e1"]
    assert json.loads(meta_path.read_text())["change_seq"] == meta["change_seq"]  # rebuilt and saved again

    # Another bank that once had this id (deleted and recreated): a different identity.
    meta_path.write_text(json.dumps({**meta, "identity": "another bank"}))
    matcher = _fresh_matcher(engine, tmp_path)
    assert matcher.load().banks_loaded >= 1
    assert [m.external_id for m in matcher.match(org, media)] == ["e1"]
    assert json.loads(meta_path.read_text())["identity"] == meta["identity"]  # rebuilt and saved again


def test_a_damaged_snapshot_falls_back_to_the_database(engine: Engine, tmp_path: Path) -> None:
    repo, org = BankRepository(engine), _org()
    media = hash_media(synthetic_image(521))
    assert media.image
    bank = repo.create_bank(org, "list")
    repo.add_entries(bank, [NewEntry("pdq", media.image.pdq, "e1", "A1"),
                            NewEntry("md5", media.digests.md5, "e2", None)])
    _fresh_matcher(engine, tmp_path).load()
    (tmp_path / str(bank.id) / "md5_keys.npy").write_bytes(b"not a numpy file")
    (tmp_path / str(bank.id) / "md5_ids.npy").write_bytes(b"")  # cut short by a power loss

    matcher = _fresh_matcher(engine, tmp_path)
    assert matcher.load().banks_loaded >= 1
    assert {m.external_id for m in matcher.match(org, media)} == {"e1", "e2"}


def test_a_bank_is_snapshotted_again_after_enough_changes(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(matcher_module, "SNAPSHOT_AFTER_CHANGES", 3)
    repo, org, rng = BankRepository(engine), _org(), np.random.default_rng(6)
    bank = repo.create_bank(org, "list")
    repo.add_entries(bank, [NewEntry("pdq", h, None, None) for h in _random_pdq(rng, 2)])
    matcher = _fresh_matcher(engine, tmp_path)
    matcher.load()
    meta_path = tmp_path / str(bank.id) / "meta.json"
    saved_seq = json.loads(meta_path.read_text())["change_seq"]

    repo.add_entries(bank, [NewEntry("pdq", h, None, None) for h in _random_pdq(rng, 2)])
    matcher.refresh()  # 2 changes: below the threshold, the snapshot stays
    assert json.loads(meta_path.read_text())["change_seq"] == saved_seq
    repo.add_entries(bank, [NewEntry("pdq", h, None, None) for h in _random_pdq(rng, 2)])
    matcher.refresh()  # 4 changes since the snapshot: saved again
    assert json.loads(meta_path.read_text())["change_seq"] > saved_seq
    assert _fresh_matcher(engine, tmp_path).load().entries_added == 0  # a restart has nothing to catch up


def test_snapshots_of_deleted_banks_and_cut_short_saves_are_pruned(engine: Engine, tmp_path: Path) -> None:
    repo, org = BankRepository(engine), _org()
    bank = repo.create_bank(org, "list")
    repo.add_entries(bank, [NewEntry("pdq", _random_pdq(np.random.default_rng(7), 1)[0], None, None)])
    (tmp_path / "999999999").mkdir()  # a bank that no longer exists
    (tmp_path / f"{bank.id}.tmp-abcdef12").mkdir()  # a save cut short
    _fresh_matcher(engine, tmp_path).load()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.isdigit()) == []
    assert (tmp_path / str(bank.id)).is_dir() and not (tmp_path / "999999999").exists()
