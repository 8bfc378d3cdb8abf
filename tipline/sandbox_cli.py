"""``tipline sandbox``: the CyberTipline sandbox, as strict as NCMEC unless told otherwise, and saying so at start.

Schema validation defaults to ``auto``: on whenever NCMEC's XSD is found. The project cannot ship the XSD
(NCMEC serves it to registered ESPs only), so "always on" would make the sandbox unable to start out of the
box, while "off unless asked" is how reports that NCMEC would refuse used to pass here. ``on`` refuses to
start without a schema; ``off`` is for tests of what happens after a schema failure would have stopped it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tipline.private_files import PRIVATE_UMASK
from tipline.settings import NcmecEnvironment, Settings

if TYPE_CHECKING:
    from cybertipline.sandbox import SandboxConfig

# Where `tipline ncmec fetch-xsd` writes by default.
DEFAULT_XSD_NAME = "cyber_tipline.xsd"


def sandbox_xsd(settings: Settings) -> Path | None:
    """The schema the sandbox validates against, or None; a schema asked for but missing stops the start."""
    mode = settings.sandbox_schema_validation
    if mode == "off":
        return None
    explicit = settings.ncmec_xsd_path
    candidate = explicit or settings.data_dir / DEFAULT_XSD_NAME
    if candidate.is_file():
        return candidate
    if explicit is not None or mode == "on":
        raise SystemExit(
            f"sandbox schema validation is {mode} but there is no XSD at {candidate}: run "
            "`tipline ncmec fetch-xsd`, set TIPLINE_NCMEC_XSD_PATH, or pass --schema-validation off"
        )
    return None


def sandbox_config(settings: Settings) -> SandboxConfig:
    """The sandbox, open to every org configured for it, keeping its state in the data folder."""
    users = {org.ncmec.username: org.ncmec.password.get_secret_value()
             for org in settings.orgs.orgs.values() if org.ncmec.environment is NcmecEnvironment.SANDBOX}
    if not users:
        raise SystemExit(f"no org in {settings.resolved_orgs_file} uses the sandbox")
    username, password = next(iter(users.items()))
    from cybertipline.sandbox import SandboxConfig  # FastAPI: loaded by the commands that serve the sandbox

    return SandboxConfig(
        username=username, password=password, extra_users=users, xsd_path=sandbox_xsd(settings),
        strict_reporting_person_email=settings.sandbox_reporter_email_required,
        error_http_status=settings.sandbox_error_http_status,
        state_file=settings.data_dir / "ncmec-sandbox.json",
    )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    given = {
        "data_dir": Path(args.data_dir) if getattr(args, "data_dir", None) else None,
        "ncmec_xsd_path": args.xsd,
        "sandbox_schema_validation": args.schema_validation,
        "sandbox_reporter_email_required": args.reporter_email_required,
        "sandbox_error_http_status": args.error_http_status,
    }
    return {name: value for name, value in given.items() if value is not None}


def cmd_sandbox(args: argparse.Namespace) -> None:
    import uvicorn

    from cybertipline.sandbox import create_sandbox_app
    from tipline.logging import configure_logging

    os.umask(PRIVATE_UMASK)  # what the sandbox keeps (reports, files) is its owner's alone
    configure_logging()
    settings = Settings(**_overrides(args))
    config = sandbox_config(settings)
    print(f"CyberTipline sandbox on {settings.resolved_sandbox_url}", *config.describe(), sep="\n", flush=True)
    uvicorn.run(create_sandbox_app(config), host=settings.sandbox_host, port=settings.sandbox_port, log_config=None)


def _http_status(text: str) -> int:
    status = int(text)
    if not (status == 200 or 400 <= status <= 599):
        raise argparse.ArgumentTypeError(f"{status} is not 200 or an error status (400-599)")
    return status


def add_sandbox_command(commands: Any) -> None:
    sandbox = commands.add_parser(
        "sandbox", help="run the CyberTipline sandbox, a stand-in for NCMEC",
        description="Each option defaults to its TIPLINE_SANDBOX_* setting; the effective values are printed at start.",
    )
    sandbox.add_argument("--schema-validation", choices=["auto", "on", "off"],
                         help="validate reports against NCMEC's XSD: auto (default) = whenever an XSD is found")
    sandbox.add_argument("--xsd", type=Path, help="NCMEC's report XSD (default: TIPLINE_NCMEC_XSD_PATH, "
                                                  f"else <data>/{DEFAULT_XSD_NAME})")
    sandbox.add_argument("--reporter-email-required", action=argparse.BooleanOptionalAction, default=None,
                         help="refuse a reportingPerson without an email, as NCMEC's docs require (default: on)")
    sandbox.add_argument("--error-http-status", type=_http_status, metavar="STATUS",
                         help="HTTP status of application errors (default 200, as NCMEC; e.g. 400)")
    sandbox.set_defaults(run=cmd_sandbox)
