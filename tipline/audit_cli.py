"""``tipline audit replay|export|verify|public-key``: what an auditor runs (README, "For auditors")."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from tipline.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    from tipline.cli import _settings as settings_of

    return settings_of(args)


def _engine(settings: Settings):  # type: ignore[no-untyped-def]
    from tipline.db import make_engine, upgrade

    upgrade(settings.resolved_database_url)
    return make_engine(settings.resolved_database_url)


def cmd_replay(args: argparse.Namespace) -> None:
    from tipline.audit_cases import replay_case
    from tipline.temporal import connect

    settings = _settings(args)
    engine = _engine(settings)

    async def run() -> tuple[list, list[str]]:
        client = None if args.from_export else await connect(settings)
        return await replay_case(settings, engine, client, args.case_ref, from_export=args.from_export)

    results, missing = asyncio.run(run())
    for result in results:
        print(result.line())
    for name in missing:
        print(f"missing   {name}")
    diverged = [r for r in results if not r.replays]
    if not results:
        raise SystemExit(f"no run of {args.case_ref} found" + (" in its exports" if args.from_export else ""))
    if diverged:
        raise SystemExit(f"{len(diverged)} of {len(results)} run(s) diverge on today's code")
    print(f"all {len(results)} run(s) replay on today's code")


def cmd_export(args: argparse.Namespace) -> None:
    from tipline.audit_cases import export_bundle
    from tipline.temporal import connect

    settings = _settings(args)
    engine = _engine(settings)

    async def run() -> bytes:
        return await export_bundle(settings, engine, await connect(settings), args.case_ref)

    data = asyncio.run(run())
    out = Path(args.out)
    out.write_bytes(data)
    out.chmod(0o600)  # the bundle holds the case's personal data in the clear
    print(f"wrote {out} ({len(data)} bytes), signed; check it with `tipline audit verify {out}`")


def cmd_verify(args: argparse.Namespace) -> None:
    from tipline.audit_cases import verify_bundle_file

    key = args.public_key
    if key is None:
        key = _deployment_public_key(args)
    elif Path(key).is_file():
        key = Path(key).read_text()
    try:
        verified = verify_bundle_file(Path(args.bundle), key)
    except ValueError as error:
        raise SystemExit(f"--public-key: {error}") from None
    for problem in verified.problems:
        print(problem, file=sys.stderr)
    if not verified.ok:
        raise SystemExit(f"the bundle fails verification: {len(verified.problems)} problem(s)")
    print(f"the bundle is intact: {verified.files} files of {verified.case_ref}, signed by this key")


def _deployment_public_key(args: argparse.Namespace) -> str:
    """The public half of the signing key file settings name, if it exists: verify never makes a key, which on an
    auditor's machine would be a new one that no bundle was signed with."""
    from tipline.audit_signing import existing_signing_key, key_path, public_key_text

    settings = _settings(args)
    try:
        key = existing_signing_key(settings)
    except (OSError, ValueError) as error:
        raise SystemExit(f"the signing key file {key_path(settings)} is unreadable ({error}); give the "
                         "deployment's public key with --public-key") from None
    if key is None:
        raise SystemExit(f"no public key to check the bundle against: give --public-key (the text or a file of "
                         f"what `tipline audit public-key` prints on the deployment); there is no signing key "
                         f"file at {key_path(settings)} (TIPLINE_AUDIT_SIGNING_KEY_FILE)")
    return public_key_text(key.public_key())


def cmd_public_key(args: argparse.Namespace) -> None:
    from tipline.audit_signing import public_key_text, signing_key

    print(public_key_text(signing_key(_settings(args)).public_key()))


def add_audit_case_commands(audit: argparse._SubParsersAction) -> None:
    replay = audit.add_parser("replay", help="replay every run of a case on today's code; exit 1 if any diverges")
    replay.add_argument("case_ref")
    replay.add_argument("--from-export", action="store_true",
                        help="from the case's exported histories, not from Temporal")
    replay.set_defaults(run=cmd_replay)
    export = audit.add_parser("export", help="write a signed bundle of a case: histories, report XML, receipts, "
                              "file details, evidence digests, the audit-log rows")
    export.add_argument("case_ref")
    export.add_argument("--out", required=True, help="the bundle file to write")
    export.set_defaults(run=cmd_export)
    verify = audit.add_parser("verify", help="check a bundle offline; name what is wrong")
    verify.add_argument("bundle")
    verify.add_argument("--public-key", help="the key `tipline audit public-key` printed (text or a file); "
                        "default: the public half of the signing key file, if this machine has it (never made "
                        "here: without either, verify exits 1)")
    verify.set_defaults(run=cmd_verify)
    audit.add_parser("public-key", help="print the public key bundles are signed with").set_defaults(
        run=cmd_public_key)
