"""Helpers shared by the API modules: status lines and input stamps."""

from __future__ import annotations

import hashlib
from pathlib import Path

from rich.markup import escape

from upscale.progress import console

TABLE_SUFFIXES = (".csv", ".json", ".geojson")


def print_status(message: str) -> None:
    console.print(f"[dim]{escape(message)}[/dim]", highlight=False)


def input_stamp(*paths: Path) -> str:
    """Fingerprint of input files (names, sizes, modification times) for caches."""
    files = sorted(f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
    parts = [f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
