"""Entry point (being built)."""


def cli() -> None:
    raise SystemExit("not built yet")
