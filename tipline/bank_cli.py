"""``tipline bank ...``: create hash banks, import hash lists, fetch NCMEC's hash-sharing feed, allowlist, list.

Heavy imports (SQLAlchemy models, Pillow via the detection package) happen inside the commands so that
``tipline --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from tipline.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

USERNAME_ENV = "TIPLINE_HASHSHARING_USERNAME"
PASSWORD_ENV = "TIPLINE_HASHSHARING_PASSWORD"
_SHOWN_MALFORMED = 10
_BAR_WIDTH = 30


class ProgressBar:
    """A one-line text bar on stderr, redrawn at most ten times a second."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        # Looked up now, not at import: sys.stderr may have been replaced since (pytest, daemons).
        self.stream = stream or sys.stderr
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        share = done / total if total else 1.0
        filled = int(share * _BAR_WIDTH)
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {share:6.1%} {done:,}/{total:,} lines")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _engine(args: argparse.Namespace) -> Engine:
    from tipline.db import make_engine, upgrade

    # ``tipline --data-dir`` applies here as it does to every other command.
    settings = Settings(**({"data_dir": Path(args.data_dir)} if getattr(args, "data_dir", None) else {}))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)  # as ``tipline apikey create`` does: safe on every start
    return make_engine(settings.resolved_database_url)


def cmd_bank_create(args: argparse.Namespace) -> None:
    from sqlalchemy.exc import IntegrityError

    from detection.banks import BankRepository

    try:
        bank = BankRepository(_engine(args)).create_bank(args.org, args.name, pdq_distance=args.distance,
                                                      source=args.source)
    except IntegrityError:
        sys.exit(f"org {args.org!r} already has a bank named {args.name!r}")
    print(f"created bank {bank.name!r} (id {bank.id}) for org {bank.org_id!r}, PDQ distance {bank.pdq_distance}")


def cmd_bank_import(args: argparse.Namespace) -> None:
    from detection.banks import BankNotFound, BankRepository

    repo = BankRepository(_engine(args))
    try:
        bank = repo.get_bank(args.org, args.bank)
    except BankNotFound as exc:
        sys.exit(str(exc))
    started = time.perf_counter()
    try:
        result = repo.import_file(bank, args.file, progress=None if args.quiet else ProgressBar("importing"))
    except OSError as exc:
        sys.exit(f"cannot read {args.file}: {exc.strerror or exc}")
    elapsed = time.perf_counter() - started
    print(f"added {result.added:,}, duplicates {result.duplicates:,}, malformed {result.malformed_count:,} "
          f"in {elapsed:.1f} s")
    for line in result.malformed[:_SHOWN_MALFORMED]:
        print(f"  line {line.line_number}: {line.reason}")
    if result.malformed_count > _SHOWN_MALFORMED:
        print(f"  ... and {result.malformed_count - _SHOWN_MALFORMED:,} more malformed lines")


def cmd_bank_fetch_ncmec(args: argparse.Namespace) -> None:
    from detection.banks import BankNotFound, BankRepository
    from detection.hashsharing import ENVIRONMENTS, FetchResult, HashSharingClient, HashSharingError, fetch_into_bank

    username, password = os.environ.get(USERNAME_ENV, ""), os.environ.get(PASSWORD_ENV, "")
    if not username or not password:
        sys.exit(f"set {USERNAME_ENV} and {PASSWORD_ENV} to the org's hash-sharing credentials")
    url = ENVIRONMENTS.get(args.url, args.url)
    engine = _engine(args)
    repo = BankRepository(engine)
    try:
        bank = repo.get_bank(args.org, args.bank)
    except BankNotFound as exc:
        sys.exit(str(exc))

    def report(progress: FetchResult) -> None:
        sys.stderr.write(f"\rpage {progress.pages:,}: {progress.entries:,} entries, +{progress.added:,} "
                         f"-{progress.removed:,} hashes")
        sys.stderr.flush()

    with HashSharingClient(url, username, password) as client:
        try:
            result = fetch_into_bank(engine, bank, client, progress=report)
        except HashSharingError as exc:
            sys.stderr.write("\n")
            sys.exit(f"fetch stopped: {exc}; run the command again to resume from the last page written")
    sys.stderr.write("\n")
    print(f"{result.pages:,} pages, {result.entries:,} entries: added {result.added:,} hashes, removed "
          f"{result.removed:,}, unchanged {result.unchanged:,}, reclassified {result.reclassified:,}, "
          f"invalid fingerprints {result.invalid_fingerprints:,}")
    if result.caught_up_to:
        print(f"caught up to {result.caught_up_to.isoformat()}")


def cmd_bank_allow(args: argparse.Namespace) -> None:
    from detection.banks import BankNotFound, BankRepository

    repo = BankRepository(_engine(args))
    try:
        bank = None if args.bank is None else repo.get_bank(args.org, args.bank)
        row = repo.allow(args.org, args.type, args.value, bank=bank, reason=args.reason, added_by=args.added_by)
    except (BankNotFound, ValueError) as exc:
        sys.exit(str(exc))
    scope = f"bank {args.bank!r}" if bank else "every bank of the org"
    print(f"allowlisted {row.hash_type} {row.value} for {scope}")


def cmd_bank_list(args: argparse.Namespace) -> None:
    from detection.banks import BankRepository

    banks = BankRepository(_engine(args)).list_banks(args.org)
    if not banks:
        print(f"org {args.org!r} has no hash banks")
        return
    print(f"{'name':<24} {'id':>6} {'source':<12} {'enabled':<8} {'pdq dist':>8} {'entries':>10}  by type")
    for info in banks:
        b = info.bank
        by_type = ", ".join(f"{t} {n:,}" for t, n in sorted(info.live_entries.items())) or "-"
        print(f"{b.name:<24} {b.id:>6} {b.source:<12} {'yes' if b.enabled else 'no':<8} {b.pdq_distance:>8} "
              f"{sum(info.live_entries.values()):>10,}  {by_type}")


def add_bank_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``tipline bank ...`` to the ``tipline`` command's subparsers."""
    # Only light modules here: every ``tipline`` command builds this parser, ``tipline worker`` included.
    from detection.bank_file import HEX_LENGTHS
    from models.bank_kinds import DEFAULT_PDQ_DISTANCE, BankSource

    bank = commands.add_parser("bank", help="hash banks: known-CSAM hash lists matched on intake")
    actions = bank.add_subparsers(required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a hash bank")
    create.add_argument("--org", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--distance", type=int, default=DEFAULT_PDQ_DISTANCE,
                        help=f"PDQ match distance, 0-256 (default {DEFAULT_PDQ_DISTANCE})")
    create.add_argument("--source", default=BankSource.FILE.value, choices=[s.value for s in BankSource])
    create.set_defaults(run=cmd_bank_create)

    imp = actions.add_parser("import", help="import a CSV or JSON-lines hash list into a bank")
    imp.add_argument("--org", required=True)
    imp.add_argument("--bank", required=True)
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.add_argument("file")
    imp.set_defaults(run=cmd_bank_import)

    fetch = actions.add_parser(
        "fetch-ncmec",
        help=f"fetch NCMEC's hash-sharing feed into a bank, resuming from its checkpoint "
             f"(credentials from {USERNAME_ENV} / {PASSWORD_ENV})")
    fetch.add_argument("--org", required=True)
    fetch.add_argument("--bank", required=True)
    fetch.add_argument("--url", default="industry",
                       help="base URL, or one of: industry, ngo, exploitative, test_industry, test_ngo, "
                            "test_exploitative (default: industry)")
    fetch.set_defaults(run=cmd_bank_fetch_ncmec)

    allow = actions.add_parser("allow", help="allowlist a known false positive")
    allow.add_argument("--org", required=True)
    allow.add_argument("--bank", help="the bank it applies to (default: every bank of the org)")
    allow.add_argument("--type", required=True, choices=[*HEX_LENGTHS, "crop_resistant"])
    allow.add_argument("--reason", required=True)
    allow.add_argument("--added-by", default=os.environ.get("USER", ""))
    allow.add_argument("value")
    allow.set_defaults(run=cmd_bank_allow)

    listing = actions.add_parser("list", help="list an org's banks with their live entry counts")
    listing.add_argument("--org", required=True)
    listing.set_defaults(run=cmd_bank_list)
