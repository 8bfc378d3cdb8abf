from __future__ import annotations

import json
from pathlib import Path

import pytest

from detection.bank_file import HashEntry, MalformedLine, iter_hash_entries, normalize_hash

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def split(items: list[HashEntry | MalformedLine]) -> tuple[list[HashEntry], list[MalformedLine]]:
    return [i for i in items if isinstance(i, HashEntry)], [i for i in items if isinstance(i, MalformedLine)]


def test_csv_keeps_good_lines_and_counts_bad(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(
        "Hash_Type,Value,ID,Classification\n"
        f"PDQ,{PDQ.upper()},1,A1\n"
        f"md5,{MD5},2,\n"
        "pdq,not-a-hash,3,A2\n"  # the one bad "PDQ" that crashed HMA builds
        f"pdq,{PDQ[:-1]},4,A1\n"
        "\n"
        f"sha1,0x{SHA1},5,B1\n"
        f"sha-256,{SHA256},6,B2\n"
        f"whirlpool,{MD5},7,A1\n"
        f"phash,0123456789ABCDEF,8\n"
        "md5\n"
        + "md5," + "a" * 10_000 + ",9,A1\n",
        encoding="utf-8",
    )
    good, bad = split(list(iter_hash_entries(path)))
    assert [(e.hash_type, e.external_id) for e in good] == [
        ("pdq", "1"), ("md5", "2"), ("sha1", "5"), ("sha256", "6"), ("phash", "8")
    ]
    assert good[0] == HashEntry("pdq", PDQ, "1", "A1")
    assert good[1].classification is None
    assert [m.line_number for m in bad] == [4, 5, 9, 11, 12]
    assert all(m.reason for m in bad)


def test_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "list.jsonl"
    lines = [
        json.dumps({"hash_type": "pdq", "value": PDQ, "id": 17, "classification": "A1"}),
        "{not json",
        json.dumps([1, 2]),
        "",
        json.dumps({"type": "md5", "hash": MD5, "label": "B1"}),
        json.dumps({"hash_type": "md5", "value": 12345}),
    ]
    path.write_text("\n".join(lines) + "\n")
    good, bad = split(list(iter_hash_entries(path)))
    assert good == [HashEntry("pdq", PDQ, "17", "A1"), HashEntry("md5", MD5, None, "B1")]
    assert [m.line_number for m in bad] == [2, 3, 6]


def test_format_sniffed_without_extension(tmp_path: Path) -> None:
    path = tmp_path / "export"
    path.write_text(json.dumps({"hash_type": "md5", "value": MD5}) + "\n")
    assert list(iter_hash_entries(path)) == [HashEntry("md5", MD5, None, None)]


def test_missing_header_reported(tmp_path: Path) -> None:
    path = tmp_path / "noheader.csv"
    path.write_text(f"pdq,{PDQ}\n")
    assert [type(x) for x in iter_hash_entries(path)] == [MalformedLine]


def test_binary_garbage_does_not_crash(tmp_path: Path) -> None:
    path = tmp_path / "garbage.csv"
    path.write_bytes(b"hash_type,value\n" + bytes(range(256)) * 50 + b"\nmd5," + MD5.encode() + b"\n\x00\xff,\"\n")
    items = list(iter_hash_entries(path))
    assert HashEntry("md5", MD5, None, None) in items
    assert any(isinstance(i, MalformedLine) for i in items)


@pytest.mark.parametrize(
    ("kind", "value", "ok"),
    [("pdq", PDQ, True), ("PDQ", " " + PDQ + " ", True), ("pdq", PDQ + "0", False), ("md5", "z" * 32, False),
     ("sha1", SHA1, True), ("", MD5, False), ("md5", None, False), (None, MD5, False)],
)
def test_normalize_hash(kind: object, value: object, ok: bool) -> None:
    result = normalize_hash(kind, value)
    assert isinstance(result, tuple) == ok


def test_quotes_and_stray_quote(tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    path.write_text(
        'hash_type,value,id,classification\r\n'
        f'"md5","{MD5}","7","A1"\r\n'
        f'md5,"{MD5},8,A1\r\n'  # unterminated quote: only this line is affected
        f"md5,{MD5},9,B1\r\n"
    )
    items = list(iter_hash_entries(path))
    assert items[0] == HashEntry("md5", MD5, "7", "A1")
    assert isinstance(items[1], MalformedLine) and items[1].line_number == 3
    assert items[2] == HashEntry("md5", MD5, "9", "B1")
