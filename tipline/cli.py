"""The ``tipline`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tipline.audit_cli import add_audit_case_commands
from tipline.logging import configure_logging
from tipline.private_files import PRIVATE_UMASK
from tipline.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine


def _private_files() -> None:
    # What a server writes (database, evidence, keys, logs) is its owner's alone, whatever umask it inherited.
    os.umask(PRIVATE_UMASK)


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {"data_dir": Path(args.data_dir)} if getattr(args, "data_dir", None) else {}
    return Settings(**overrides)


def cmd_up(args: argparse.Namespace) -> None:
    from tipline import stack

    configure_logging("WARNING")
    stack.main(_settings(args))


def cmd_worker(args: argparse.Namespace) -> None:
    _private_files()
    import worker

    configure_logging()
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(worker.run(_settings(args)))


def cmd_api(args: argparse.Namespace) -> None:
    _private_files()
    import uvicorn

    from api.app import create_app

    configure_logging()
    settings = _settings(args)
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_config=None)


def cmd_db_upgrade(args: argparse.Namespace) -> None:
    _private_files()
    from tipline.db import upgrade

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    print("database is at the newest schema")


def cmd_apikey_create(args: argparse.Namespace) -> None:
    from api.deps import create_api_key
    from models.records import Role
    from tipline.db import make_engine, upgrade

    settings = _settings(args)
    settings.orgs.get(args.org)  # refuse keys for orgs this deployment does not serve
    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    key = create_api_key(engine, args.org, Role(args.role), args.label)
    from api.deps import list_api_keys

    newest = max(list_api_keys(engine, args.org), key=lambda k: k.id or 0)
    _audit(settings, engine, "api_key.created", args.org, f"key:{newest.id}", role=args.role)
    print(key)


def cmd_apikey_list(args: argparse.Namespace) -> None:
    from api.deps import list_api_keys
    from tipline.db import make_engine, upgrade

    settings = _settings(args)
    upgrade(settings.resolved_database_url)
    keys = list_api_keys(make_engine(settings.resolved_database_url), args.org)
    # Never the key (it is not stored) nor its hash: what identifies a key here is its id.
    rows = [("ID", "ORG", "ROLE", "LABEL", "CREATED", "REVOKED")] + [
        (str(key.id), key.org_id, key.role, key.label, _when(key.created_at), _when(key.revoked_at) or "-")
        for key in keys
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def cmd_apikey_revoke(args: argparse.Namespace) -> None:
    from api.deps import revoke_api_key
    from tipline.db import make_engine, upgrade

    settings = _settings(args)
    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    key = revoke_api_key(engine, args.id)
    if key is None:
        raise SystemExit(f"no API key with id {args.id}")
    _audit(settings, engine, "api_key.revoked", key.org_id, f"key:{key.id}")
    print(f"API key {key.id} ({key.org_id}, {key.role}) is revoked since {_when(key.revoked_at)}; "
          "requests with it are refused")


def _password(args: argparse.Namespace) -> str:
    # Read, never an argument: arguments show in the process list and the shell's history.
    import getpass
    import sys

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise SystemExit("the passwords differ")
        return password
    return sys.stdin.readline().rstrip("\n")


def _accounts(args: argparse.Namespace) -> tuple[Settings, Engine]:
    from tipline.db import make_engine, upgrade

    settings = _settings(args)
    upgrade(settings.resolved_database_url)
    return settings, make_engine(settings.resolved_database_url)


def cmd_user_create(args: argparse.Namespace) -> None:
    from tipline.accounts import AccountError, create_account

    settings, engine = _accounts(args)
    settings.orgs.get(args.org)  # refuse accounts for orgs this deployment does not serve
    try:
        account = create_account(engine, args.org, args.username, args.role, _password(args))
    except AccountError as error:
        raise SystemExit(str(error)) from None
    _audit(settings, engine, "account.created", account.org_id, f"user:{account.id}", role=account.role)
    print(f"user {account.username} (id {account.id}, {account.org_id}, {account.role}) can sign in")


def cmd_user_disable(args: argparse.Namespace) -> None:
    from models.records import utcnow
    from tipline.accounts import AccountError, disable_account

    settings, engine = _accounts(args)
    try:
        ended = disable_account(engine, args.username, utcnow())
    except AccountError as error:
        raise SystemExit(str(error)) from None
    _audit_account(settings, engine, "account.disabled", args.username, sessions_ended=ended)
    print(f"user {args.username} is disabled; {ended} session(s) ended")


def cmd_user_reset(args: argparse.Namespace) -> None:
    from models.records import utcnow
    from tipline.accounts import AccountError, reset_password

    settings, engine = _accounts(args)
    try:
        ended = reset_password(engine, args.username, _password(args), utcnow())
    except AccountError as error:
        raise SystemExit(str(error)) from None
    _audit_account(settings, engine, "account.password_reset", args.username, sessions_ended=ended)
    print(f"user {args.username} has a new password; {ended} session(s) ended")


def _audit(settings: Settings, engine: Engine, action: str, org_id: str | None, subject: str | None,
           **detail: str | int) -> None:
    from tipline.audit_log import AuditLog

    AuditLog.from_settings(settings, engine).append(action, actor="cli", org_id=org_id, subject=subject, **detail)


def _audit_account(settings: Settings, engine: Engine, action: str, username: str, **detail: int) -> None:
    # By id: a user name may be a person's email, and the log keeps no names.
    from sqlmodel import Session, select

    from models.accounts import ReviewerAccount

    with Session(engine) as session:
        account = session.exec(select(ReviewerAccount).where(ReviewerAccount.username == username)).one()
    _audit(settings, engine, action, account.org_id, f"user:{account.id}", **detail)


def cmd_audit_verify_log(args: argparse.Namespace) -> None:
    from tipline.audit_log import AuditLog
    from tipline.db import make_engine, upgrade

    settings = _settings(args)
    upgrade(settings.resolved_database_url)
    log = AuditLog.from_settings(settings, make_engine(settings.resolved_database_url))
    expected = None
    if args.head:
        seq, _, seal = args.head.partition(":")
        if not seq.isdigit() or len(seal) != 64:
            raise SystemExit("--head: expected SEQ:SEAL as `tipline audit head` prints it")
        expected = (int(seq), seal)
    problems = log.verify(expected)
    for problem in problems:
        print(problem)
    seq, seal = log.head()
    if problems:
        raise SystemExit(f"the audit log has {len(problems)} problem(s)")
    print(f"the audit log is intact: {seq} rows, head {seq}:{seal}")


def cmd_audit_head(args: argparse.Namespace) -> None:
    from tipline.audit_log import AuditLog
    from tipline.db import make_engine, upgrade

    settings = _settings(args)
    upgrade(settings.resolved_database_url)
    seq, seal = AuditLog.from_settings(settings, make_engine(settings.resolved_database_url)).head()
    print(f"{seq}:{seal}")


def _when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    # SQLite hands timestamps back without their zone; they were written in UTC.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def cmd_ncmec_fetch_xsd(args: argparse.Namespace) -> None:
    from cybertipline.client import CyberTiplineClient
    from cybertipline.xsd import load_schema

    settings = _settings(args)
    org = settings.orgs.get(args.org)
    base_url = settings.ncmec_base_url(org.ncmec.environment)

    async def fetch() -> str:
        async with CyberTiplineClient(base_url, org.ncmec.username, org.ncmec.password.get_secret_value()) as client:
            return await client.xsd()

    output = Path(args.output or settings.data_dir / "cyber_tipline.xsd")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(asyncio.run(fetch()))
    load_schema(output.resolve())  # refuse to leave behind something that is not a usable schema
    print(f"NCMEC's schema ({org.ncmec.environment.value}) is in {output}; "
          f"set TIPLINE_NCMEC_XSD_PATH={output.resolve()} to validate every report against it")


def cmd_temporal_setup(args: argparse.Namespace) -> None:
    from temporalio.service import RPCError

    from tipline.temporal import connect
    from tipline.temporal_setup import SetupConflict, setup_search_attributes

    settings = _settings(args)

    async def setup() -> None:
        client = await connect(settings)
        result = await setup_search_attributes(client)
        for name in result.added:
            print(f"added search attribute {name}")
        print(f"namespace {settings.temporal_namespace}: {len(result.added)} search attributes added, "
              f"{len(result.present)} already present")

    try:
        asyncio.run(setup())
    except SetupConflict as error:
        raise SystemExit(f"tipline temporal setup: {error}") from None
    except RPCError as error:  # e.g. the credentials may not change the namespace's search attributes
        raise SystemExit(f"tipline temporal setup: Temporal refused ({error.status.name}): {error.message}") from None
    except RuntimeError as error:  # the connection's error names the address, namespace and TLS settings
        raise SystemExit(f"tipline temporal setup: {error}") from None
    # Done and printed: leave without interpreter finalization, during which the Temporal core's runtime thread
    # can still call into Python and abort the process (seen as exit -6 after a successful setup).
    sys.stdout.flush()
    os._exit(0)


def cmd_demo(args: argparse.Namespace) -> None:
    from tipline import demo

    demo.main(_settings(args), args.org)


def build_parser() -> argparse.ArgumentParser:
    from models.roles import Role
    from tipline.bank_cli import add_bank_commands
    from tipline.sandbox_cli import add_sandbox_command

    parser = argparse.ArgumentParser(prog="tipline", description="From a suspected CSAM upload to a filed CyberTip.")
    parser.add_argument("--data-dir", help="where the local stack keeps its data (default ./data, or TIPLINE_DATA_DIR)")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    commands.add_parser("up", help="run the whole stack locally: Temporal, worker, API, NCMEC sandbox"
                        ).set_defaults(run=cmd_up)
    commands.add_parser("worker", help="run a Temporal worker").set_defaults(run=cmd_worker)
    commands.add_parser("api", help="run the web API").set_defaults(run=cmd_api)
    add_sandbox_command(commands)

    db = commands.add_parser("db", help="database schema").add_subparsers(required=True, metavar="ACTION")
    db.add_parser("upgrade", help="apply every pending migration").set_defaults(run=cmd_db_upgrade)

    audit = commands.add_parser("audit", help="the audit log; replaying, exporting, verifying cases").add_subparsers(
        required=True, metavar="ACTION")
    verify_log = audit.add_parser("verify-log", help="check every row's seal and the chain; name any row altered, "
                                  "removed or moved")
    verify_log.add_argument("--head", help="SEQ:SEAL kept from an earlier `tipline audit head`: the log must "
                            "still reach it (catches rows cut off the end)")
    verify_log.set_defaults(run=cmd_audit_verify_log)
    audit.add_parser("head", help="print the newest row's SEQ:SEAL, to keep outside the database").set_defaults(
        run=cmd_audit_head)
    add_audit_case_commands(audit)
    apikey = commands.add_parser("apikey", help="API keys").add_subparsers(required=True, metavar="ACTION")
    create = apikey.add_parser("create", help="create a key and print it (it is shown only once)")
    create.add_argument("--org", required=True)
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--label", default="")
    create.set_defaults(run=cmd_apikey_create)
    listing = apikey.add_parser("list", help="list keys: id, org, role, label, created, revoked (never a key)")
    listing.add_argument("--org", help="only this org's keys")
    listing.set_defaults(run=cmd_apikey_list)
    revoke = apikey.add_parser("revoke", help="revoke a key by its id (from list); it is refused from then on")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(run=cmd_apikey_revoke)

    user = commands.add_parser("user", help="reviewers' accounts").add_subparsers(required=True, metavar="ACTION")
    people_roles = [r.value for r in Role if r is not Role.PLATFORM]
    create_user = user.add_parser("create", help="create an account; the password is read from the terminal "
                                  "or, when piped, from the first line of standard input")
    create_user.add_argument("username")
    create_user.add_argument("--org", required=True)
    create_user.add_argument("--role", required=True, choices=people_roles)
    create_user.set_defaults(run=cmd_user_create)
    disable = user.add_parser("disable", help="refuse the account from now on and end all its sessions")
    disable.add_argument("username")
    disable.set_defaults(run=cmd_user_disable)
    reset = user.add_parser("reset", help="set a new password (read as for create) and end all its sessions")
    reset.add_argument("username")
    reset.set_defaults(run=cmd_user_reset)

    ncmec = commands.add_parser("ncmec", help="NCMEC's CyberTipline").add_subparsers(required=True, metavar="ACTION")
    fetch_xsd = ncmec.add_parser("fetch-xsd", help="download the report schema from the org's NCMEC environment")
    fetch_xsd.add_argument("--org", required=True, help="whose credentials and environment to use")
    fetch_xsd.add_argument("--output", help="where to write it (default: <data>/cyber_tipline.xsd)")
    fetch_xsd.set_defaults(run=cmd_ncmec_fetch_xsd)

    temporal = commands.add_parser("temporal", help="the Temporal cluster Tipline runs on"
                                   ).add_subparsers(required=True, metavar="ACTION")
    temporal.add_parser("setup", help="register Tipline's search attributes in the namespace (operator service); "
                        "safe to run again").set_defaults(run=cmd_temporal_setup)

    add_bank_commands(commands)

    demo = commands.add_parser("demo", help="play a platform and a reviewer against the running stack")
    demo.add_argument("--org", default="demo")
    demo.set_defaults(run=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
