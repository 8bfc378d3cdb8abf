def main() -> None:
    raise SystemExit("tipline: not built yet")
