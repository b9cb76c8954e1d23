"""MkDocs hook: run the tutorial's commands and put the figures they write into the site.

The figures of ``tutorial.md`` are never stored: a build runs the page's ``bash`` blocks,
as written, in a fresh folder, and takes the pictures the page links to from there. A
command that fails stops the build, so the tutorial always runs and its figures are those
of the current code. A run is kept under ``build/docs-tutorial/`` and reused while the
commands, the package's source, this hook and the versions of the libraries that draw and
compute are the same, so rebuilding unchanged docs costs nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from markdown_it import MarkdownIt
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

PAGE = "tutorial.md"
BLOCK_TIMEOUT_S = 1800
LIBRARIES = ("numpy", "xarray", "dask", "zarr", "torch", "shap", "matplotlib", "rasterio")
"""Libraries whose version changes the tutorial's numbers or figures."""


def tutorial_blocks(page: Path) -> list[tuple[int, str]]:
    """Return the page's code blocks as (line, commands); every block must be ``bash``."""
    blocks = []
    for token in MarkdownIt().parse(page.read_text()):
        if token.type != "fence":
            continue
        line = token.map[0] + 1
        if token.info.strip() != "bash":
            raise PluginError(
                f"{page.name}:{line}: a {token.info.strip() or 'plain'} block; the tutorial's "
                "blocks are bash commands, run when the site is built"
            )
        blocks.append((line, token.content))
    return blocks


def tutorial_images(page: Path) -> list[str]:
    """Return the images the page shows, as paths relative to the page."""
    tokens = MarkdownIt().parse(page.read_text())
    return [
        child.attrGet("src")
        for token in tokens
        if token.type == "inline"
        for child in token.children or []
        if child.type == "image"
    ]


def _fingerprint(blocks: list[tuple[int, str]], package: Path) -> str:
    digest = hashlib.sha256("\n".join(code for _, code in blocks).encode())
    package_files = [p for p in sorted(package.rglob("*")) if "__pycache__" not in p.parts]
    for source in [Path(__file__), *package_files]:  # code and package data (presets...)
        if source.is_file():
            digest.update(source.read_bytes())
    digest.update(" ".join(version(name) for name in LIBRARIES).encode())
    return digest.hexdigest()[:16]


def run_tutorial(page: Path, folder: Path) -> None:
    """Run every block of the page in ``folder`` with bash, stopping at the first failure."""
    folder.mkdir(parents=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for line, commands in tutorial_blocks(page):
        block = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", commands],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: a timeout stops every command
        )
        try:
            stdout, stderr = block.communicate(timeout=BLOCK_TIMEOUT_S)
        except BaseException:  # the timeout, or the build interrupted
            os.killpg(block.pid, signal.SIGKILL)
            stdout, stderr = block.communicate()
            raise PluginError(
                f"{page.name}:{line}: the block was stopped (over {BLOCK_TIMEOUT_S} s, or "
                f"interrupted):\n{commands}\n{_tails(stdout, stderr)}"
            ) from None
        if block.returncode != 0:
            raise PluginError(
                f"{page.name}:{line}: the block failed (exit {block.returncode}):\n{commands}\n"
                f"{_tails(stdout, stderr)}"
            )


def _tails(stdout: str, stderr: str) -> str:
    return f"stdout (end):\n{stdout[-1500:]}\nstderr (end):\n{stderr[-2500:]}"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Run the tutorial (or reuse its last run) and add the figures it shows."""
    docs = Path(config.docs_dir)
    page = docs / PAGE
    cache = docs.parent / "build" / "docs-tutorial"
    run = cache / _fingerprint(tutorial_blocks(page), docs.parent / "upscale")
    if not run.is_dir():
        partial = run.with_name(f"{run.name}.{os.getpid()}.partial")
        try:
            run_tutorial(page, partial)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        try:
            partial.rename(run)  # whole runs only: a failed run leaves no cache
        except OSError:
            if not run.is_dir():
                raise
            shutil.rmtree(partial)  # a concurrent build finished the same run first
        for stale in cache.iterdir():
            if stale != run and not stale.name.endswith(".partial"):
                shutil.rmtree(stale, ignore_errors=True)
    for image in tutorial_images(page):
        figure = run / image
        if not figure.is_file():
            raise PluginError(f"{PAGE} shows {image}, which its commands did not write")
        files.append(File.generated(config, image, abs_src_path=str(figure)))
    return files
