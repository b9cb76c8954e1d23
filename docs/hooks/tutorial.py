"""MkDocs hook: run the tutorial's commands and put the figures they write into the site.

The figures of ``tutorial.md`` are never stored: every build runs the page's ``bash`` blocks,
as written, in a fresh folder, and takes the pictures the page links to from there. A
command that fails stops the build, so the tutorial always runs and its figures are always
those of the current code. Runs are cached under ``build/docs-tutorial/`` by the text of the
commands and the source of the package, so rebuilding unchanged docs costs nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

PAGE = "tutorial.md"
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+\.png)\)")


def tutorial_commands(page: Path) -> list[str]:
    """Return the page's ``bash`` blocks, in order."""
    return BLOCK.findall(page.read_text())


def _fingerprint(commands: list[str], package: Path) -> str:
    digest = hashlib.sha256("\n".join(commands).encode())
    for source in sorted(package.rglob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def run_tutorial(page: Path, folder: Path) -> Path:
    """Run every command of the page in ``folder`` (bash, stop at the first failure)."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for number, commands in enumerate(tutorial_commands(page), start=1):
        ran = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", commands],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
        )
        if ran.returncode != 0:
            raise PluginError(
                f"{page.name}: command block {number} failed (exit {ran.returncode}):\n"
                f"{commands}\n{ran.stderr[-2000:]}"
            )
    return folder


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Run the tutorial (or reuse its cached run) and add the figures it links to."""
    docs = Path(config.docs_dir)
    page = docs / PAGE
    root = docs.parent
    cache = root / "build" / "docs-tutorial"
    run = cache / _fingerprint(tutorial_commands(page), root / "upscale")
    if not (run / ".complete").exists():
        shutil.rmtree(cache, ignore_errors=True)
        run_tutorial(page, run)
        (run / ".complete").touch()
    for link in IMAGE.findall(page.read_text()):
        figure = run / link
        if not figure.is_file():
            raise PluginError(f"{PAGE} shows {link}, which its commands did not write")
        files.append(File.generated(config, link, abs_src_path=str(figure)))
    return files
