"""The documentation site builds offline in strict mode and documents every module."""

import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import upscale

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_api_reference_covers_every_module():
    documented = set()
    for page in (DOCS / "api").glob("*.md"):
        documented |= set(re.findall(r"^::: ([\w.]+)", page.read_text(), flags=re.M))
    modules = {
        info.name
        for info in pkgutil.walk_packages(upscale.__path__, "upscale.")
        if not info.name.rsplit(".", 1)[-1].startswith("_")
    }
    assert modules - documented == set()
    assert documented - modules == {"upscale"}


def test_cross_references_in_docstrings_are_whole():
    """A link split over lines renders as text, and the strict build does not notice."""
    split = []
    for source in (ROOT / "upscale").rglob("*.py"):
        text = source.read_text()
        for match in re.finditer(r"\[`[^`]*`\]\[[^\]]*\]", text, flags=re.S):
            if "\n" in match.group():
                split.append(f"{source.name}: {match.group()!r}")
        split += [f"{source.name}: {m!r}" for m in re.findall(r"\[`[^`\n]*\n", text)]
    assert not split


@pytest.mark.slow
def test_site_builds_strict(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    log = [line for line in (built.stdout + built.stderr).splitlines() if "│" not in line]
    assert built.returncode == 0, "\n".join(log)[-4000:]
    site = tmp_path / "site"
    cli = (site / "cli-reference.html").read_text()
    assert "upscale predict" in cli and "--batch-size" in cli
    api = (site / "api" / "index.html").read_text()
    assert "upscale.train" in api and "Cross-validate" in api
