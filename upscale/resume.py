"""Runs that write several outputs, and resume after a crash or a kill.

A run records its plan (what it was asked to do) in a marker file before it writes, and
removes the marker when every output is written. Started again with the same plan, a run
whose marker is still there was interrupted: the outputs it finished are kept and only the
others are written. Without a marker, existing outputs are finished results, replaced only
with ``overwrite``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from upscale.errors import refuse_overwrite


@contextmanager
def resumable(
    marker: Path, plan: dict[str, Any], outputs: Iterable[Path], *, overwrite: bool
) -> Iterator[set[Path]]:
    """Yield the outputs an interrupted run of the same plan already finished.

    Parameters
    ----------
    marker
        File recording the plan while the run is under way (hold the outputs' lock).
    plan
        JSON-serialisable description of the run: the same plan resumes.
    outputs
        Everything the run writes.
    overwrite
        Replace finished outputs (and ignore what an interrupted run left).

    Raises
    ------
    OutputExistsError
        When an output exists from a finished run, or another plan, and ``overwrite`` is
        False.
    """
    outputs = list(outputs)
    recorded = json.dumps(plan, sort_keys=True, default=str)
    interrupted = marker.exists() and marker.read_text() == recorded
    if interrupted and not overwrite:
        done = {path for path in outputs if path.exists()}
    else:
        refuse_overwrite(outputs, overwrite=overwrite)
        done = set()
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(recorded)
    yield done
    marker.unlink()  # only when every output is written: an error leaves the run resumable
