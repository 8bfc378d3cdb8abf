"""Hostile XML for the tests that prove no entity is ever resolved: an entity bomb and an external entity.

The external entity points at a local file (never a network URL); a test that finds the file's marker in
any answer or stored record has caught an XXE.
"""

from __future__ import annotations

from pathlib import Path

SECRET_MARKER = "H5-LOCAL-FILE-MARKER-7f3a"


def billion_laughs(root: str, inner: str = "") -> bytes:
    """Ten levels of ten-fold entities: a billion "lol"s if anything expands them."""
    levels = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    ]
    return (f'<?xml version="1.0"?><!DOCTYPE {root} [{"".join(levels)}]>'
            f"<{root}>{inner}&lol9;</{root}>").encode()


def external_entity(root: str, secret_file: Path, inner: str = "") -> bytes:
    """An entity that would pull ``secret_file`` into the document."""
    return (f'<?xml version="1.0"?><!DOCTYPE {root} [<!ENTITY xxe SYSTEM "{secret_file.resolve().as_uri()}">]>'
            f"<{root}>{inner}&xxe;</{root}>").encode()


def internal_entity(root: str, inner: str = "") -> bytes:
    return f'<?xml version="1.0"?><!DOCTYPE {root} [<!ENTITY x "harmless">]><{root}>{inner}&x;</{root}>'.encode()


def external_dtd(root: str, dtd_file: Path, inner: str = "") -> bytes:
    doctype = f'<!DOCTYPE {root} SYSTEM "{dtd_file.resolve().as_uri()}">'
    return f'<?xml version="1.0"?>{doctype}<{root}>{inner}</{root}>'.encode()


def write_secret(directory: Path) -> Path:
    secret = directory / "secret.txt"
    secret.write_text(SECRET_MARKER)
    dtd = directory / "evil.dtd"
    dtd.write_text(f'<!ENTITY leaked "{SECRET_MARKER}">')
    return secret
