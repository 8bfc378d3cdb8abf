"""What a hash bank holds and where it came from (models.hash_banks stores them).

Apart from the tables, so the command line offers them without loading the database library."""

from __future__ import annotations

from enum import StrEnum


class BankSource(StrEnum):
    FILE = "file"  # filled by ``tipline bank import``
    NCMEC = "ncmec"  # filled from NCMEC's hash-sharing API
    OWN_REPORTS = "own_reports"  # media the org has itself reported; the only banks pHash is matched against


class BankHashType(StrEnum):
    PDQ = "pdq"
    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    PHASH = "phash"
    # imagehash's crop-resistant hash (comma-separated 16-hex segment dhashes); own_reports banks only.
    CROP_RESISTANT = "crop_resistant"


DEFAULT_PDQ_DISTANCE = 31
