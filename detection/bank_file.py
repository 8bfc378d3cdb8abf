"""Parse hash-list files (CSV or JSON lines) into validated entries, one bad line never stopping the rest.

CSV: a header row naming at least a hash-type column and a value column (names are case-insensitive;
aliases below), optionally an id and a classification (or label) column::

    hash_type,value,id,classification
    pdq,f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22,123,A1
    md5,d41d8cd98f00b204e9800998ecf8427e,124,

JSON lines: one object a line with the same keys, e.g. ``{"hash_type": "md5", "value": "...", "id": 7}``.
The format is taken from the extension (``.jsonl``/``.ndjson``/``.json`` vs anything else) and, failing
that, from the first non-blank character. Blank lines are skipped. Line numbers are 1-based physical
lines of the file, header included, so an operator can open the file at the reported line.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO, cast

HashType = Literal["pdq", "md5", "sha1", "sha256", "phash"]

HEX_LENGTHS: dict[str, int] = {"pdq": 64, "md5": 32, "sha1": 40, "sha256": 64, "phash": 16}

_TYPE_ALIASES: dict[str, str] = {
    "pdq": "pdq", "pdqhash": "pdq", "pdq_hash": "pdq",
    "md5": "md5", "md-5": "md5",
    "sha1": "sha1", "sha-1": "sha1", "sha_1": "sha1",
    "sha256": "sha256", "sha-256": "sha256", "sha_256": "sha256",
    "phash": "phash", "p_hash": "phash", "imagehash_phash": "phash",
}  # fmt: skip
_TYPE_COLUMNS = ("hash_type", "type", "hashtype", "algorithm", "signal_type", "fingerprint_type")
_VALUE_COLUMNS = ("value", "hash", "hash_value", "signal", "fingerprint", "signal_value")
_ID_COLUMNS = ("external_id", "id", "entry_id", "hash_id")
_CLASS_COLUMNS = ("classification", "label", "category")

# Longer lines are hostile or broken; rejecting them bounds per-line work.
MAX_LINE_CHARS = 4096
_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True, slots=True)
class HashEntry:
    hash_type: HashType
    value: str  # lower-case hex of the exact length for its type
    external_id: str | None
    classification: str | None


@dataclass(frozen=True, slots=True)
class MalformedLine:
    line_number: int
    reason: str


def normalize_hash(hash_type: object, value: object) -> tuple[HashType, str] | str:
    """Return ``(type, lower-case hex)`` or a reason string. Accepts ``0x`` prefixes and inner spaces."""
    if not isinstance(hash_type, str) or not hash_type.strip():
        return "missing hash type"
    kind = _TYPE_ALIASES.get(hash_type.strip().lower())
    if kind is None:
        return f"unsupported hash type {hash_type.strip()[:40]!r}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{kind} value must be a hex string, not a number"
    if not isinstance(value, str) or not value.strip():
        return f"missing {kind} value"
    text = value.strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    text = text.replace(" ", "").replace(":", "")
    expected = HEX_LENGTHS[kind]
    if len(text) != expected:
        return f"{kind} value must be {expected} hex digits, got {len(text)}"
    if not _HEX.fullmatch(text):
        return f"{kind} value is not hexadecimal"
    return cast(HashType, kind), text


def _optional_text(value: object, limit: int = 256) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text[:limit] or None


def _make_entry(
    line_number: int, hash_type: object, value: object, external_id: object, classification: object
) -> HashEntry | MalformedLine:
    parsed = normalize_hash(hash_type, value)
    if isinstance(parsed, str):
        return MalformedLine(line_number, parsed)
    kind, hexvalue = parsed
    return HashEntry(kind, hexvalue, _optional_text(external_id), _optional_text(classification))


def iter_hash_entries(path: str | os.PathLike[str]) -> Iterator[HashEntry | MalformedLine]:
    """Yield one ``HashEntry`` or ``MalformedLine`` per non-blank data line; never raises for bad content.

    I/O errors opening the file do raise (the caller asked for a file that is not there).
    """
    p = Path(path)
    # errors="replace": undecodable bytes become U+FFFD, which then fails hex validation on that line only.
    with open(p, encoding="utf-8-sig", errors="replace", newline="") as f:
        if _looks_like_jsonl(p, f):
            yield from _iter_jsonl(f)
        else:
            yield from _iter_csv(f)


def _looks_like_jsonl(path: Path, f: TextIO) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return True
    if suffix in (".csv", ".txt"):
        return False
    start = f.tell()
    head = f.read(4096)
    f.seek(start)
    return head.lstrip().startswith("{")


def _iter_jsonl(f: Iterator[str]) -> Iterator[HashEntry | MalformedLine]:
    for line_number, line in enumerate(f, start=1):
        if len(line) > MAX_LINE_CHARS:
            yield MalformedLine(line_number, "line too long")
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            yield MalformedLine(line_number, "not valid JSON")
            continue
        if not isinstance(obj, dict):
            yield MalformedLine(line_number, "not a JSON object")
            continue
        fields = {str(k).strip().lower(): v for k, v in obj.items()}
        yield _make_entry(
            line_number,
            _first(fields, _TYPE_COLUMNS),
            _first(fields, _VALUE_COLUMNS),
            _first(fields, _ID_COLUMNS),
            _first(fields, _CLASS_COLUMNS),
        )


def _first(fields: dict[str, object], names: tuple[str, ...]) -> object:
    for name in names:
        if name in fields and fields[name] is not None:
            return fields[name]
    return None


def _split_csv_line(line: str) -> list[str]:
    # Each physical line is parsed on its own: hash lists never need multi-line fields, and a stray quote
    # must not swallow the lines after it. Plain lines skip the csv module entirely (3x faster).
    text = line.rstrip("\r\n")
    if '"' not in text:
        return text.split(",")
    return next(csv.reader((text,), strict=False), [])


def _iter_csv(f: Iterator[str]) -> Iterator[HashEntry | MalformedLine]:
    columns: tuple[int, int, int | None, int | None] | None = None
    width = 0
    for line_number, line in enumerate(f, start=1):
        if len(line) > MAX_LINE_CHARS:
            yield MalformedLine(line_number, "line too long")
            continue
        if not line.strip():
            continue
        try:
            row = _split_csv_line(line)
        except csv.Error as exc:  # e.g. NUL characters
            yield MalformedLine(line_number, f"unparseable CSV: {exc}")
            continue
        if columns is None:
            resolved = _resolve_columns([cell.strip().lower() for cell in row])
            if isinstance(resolved, str):
                yield MalformedLine(line_number, resolved)
                return
            columns = resolved
            width = max(c for c in columns if c is not None) + 1
            continue
        if len(row) < width:
            row += [""] * (width - len(row))
        type_col, value_col, id_col, class_col = columns
        yield _make_entry(
            line_number,
            row[type_col],
            row[value_col],
            row[id_col] if id_col is not None else None,
            row[class_col] if class_col is not None else None,
        )


def _resolve_columns(header: list[str]) -> tuple[int, int, int | None, int | None] | str:
    def find(names: tuple[str, ...]) -> int | None:
        for name in names:
            if name in header:
                return header.index(name)
        return None

    type_col, value_col = find(_TYPE_COLUMNS), find(_VALUE_COLUMNS)
    if type_col is None or value_col is None:
        return "header must name a hash type column and a value column (e.g. 'hash_type,value')"
    return type_col, value_col, find(_ID_COLUMNS), find(_CLASS_COLUMNS)
