"""Where the pages' files are."""

from pathlib import Path

STATIC = Path(__file__).with_name("static")
