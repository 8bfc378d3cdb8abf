"""A real S3 protocol server for the tests: moto's standalone server, in a process of its own.

Its own process, not moto's in-process ``ThreadedMotoServer``: the server keeps every stored byte in its memory,
and a test measuring this process's allocations (tracemalloc) must see only what the evidence store holds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

# Made up per session: the tests check these never reach a log line, an error or a repr.
ACCESS_KEY_ID = "AKIATIPLINE" + uuid.uuid4().hex[:9].upper()
SECRET_ACCESS_KEY = "tipline-test-secret-" + uuid.uuid4().hex
REGION = "us-east-1"


@dataclass
class S3Server:
    endpoint_url: str

    def client(self) -> Any:
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name=REGION,
            config=Config(s3={"addressing_style": "path"}))

    def new_bucket(self) -> str:
        name = f"tipline-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def credentials_in_environment() -> Iterator[None]:
    """What a deployment does: credentials in the environment, where boto3's default chain finds them."""
    values = {"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
              # No instance-metadata lookups from a test machine, and no profile of the person running them.
              "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
              "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def moto_server(log: Path) -> Iterator[S3Server]:
    port = _free_port()
    executable = Path(sys.executable).with_name("moto_server")
    with log.open("wb") as output:
        process = subprocess.Popen([str(executable), "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=output, stderr=subprocess.STDOUT)
    server = S3Server(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{server.endpoint_url}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start; see {log}") from None
                time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
