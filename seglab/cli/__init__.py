"""The `seglab` command line (typer + rich)."""
