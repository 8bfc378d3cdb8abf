"""``python -m cybertipline.sandbox``: run the sandbox on its own (demo stack, manual poking with curl).

Credentials come from the environment so they stay out of shell history and process listings.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import uvicorn

from cybertipline.sandbox.app import SandboxConfig, create_sandbox_app


def main() -> None:
    parser = argparse.ArgumentParser(description="CyberTipline API sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--xsd", type=Path, help="NCMEC report XSD; validation is skipped without it")
    parser.add_argument("--state-file", type=Path, help="JSON file that keeps reports across restarts")
    parser.add_argument("--error-http-status", type=int, default=200)
    parser.add_argument("--lenient-reporting-person", action="store_true", help="do not require an email")
    args = parser.parse_args()
    username = os.environ.get("CYBERTIPLINE_SANDBOX_USERNAME", "usr123")
    password = os.environ.get("CYBERTIPLINE_SANDBOX_PASSWORD", "pswd123")
    config = SandboxConfig(
        username=username,
        password=password,
        xsd_path=args.xsd,
        strict_reporting_person_email=not args.lenient_reporting_person,
        error_http_status=args.error_http_status,
        state_file=args.state_file,
    )
    print(f"CyberTipline sandbox on http://{args.host}:{args.port}/ispws", *config.describe(), sep="\n", flush=True)
    uvicorn.run(create_sandbox_app(config), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
