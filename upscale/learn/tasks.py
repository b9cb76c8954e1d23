"""Training tasks that run the same here, in another process, or on a dask.distributed worker.

A process that runs a task for this one (a sweep's worker process, a cluster's worker) imported
``upscale`` anew: it holds the shipped architectures and its own options only, and torch picks
its threads from its own cores. A task made by [`carried`][upscale.learn.tasks.carried] brings
the caller's architecture registry and options along and fits with the torch threads of the
``threads`` option, so a member fitted anywhere has the same weights as one fitted here (the
thread count changes how torch sums, and so the weights' last bits).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch

from upscale.learn.nets import NETS
from upscale.options import OPTIONS, get_options, set_options


class Future(Protocol):
    """The result of a submitted task, when it is ready."""

    def result(self) -> Any:
        """Wait for the task and return its value, or raise its exception."""


class Executor(Protocol):
    """What runs tasks elsewhere: a ``concurrent.futures`` executor or a ``distributed.Client``."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Schedule ``fn(*args, **kwargs)`` and return its future."""


def carried(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``fn`` to run with this process's registry and options, wherever it is called.

    The wrapper pickles (``fn`` must be importable), so it can be submitted to any
    [`Executor`][upscale.learn.tasks.Executor]; called here, it runs ``fn`` with the torch threads
    of the ``threads`` option.
    """
    return functools.partial(_run_carried, dict(NETS), get_options(), fn)


def _run_carried(
    nets: Mapping[str, Callable[..., torch.nn.Module]],
    options: dict[str, Any],
    fn: Callable[..., Any],
    /,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """Run ``fn`` with the caller's architectures and options; put the options and threads back.

    The caller's architectures stay in the registry afterwards: a worker that runs several
    tasks keeps them, and they change nothing else it runs.
    """
    NETS.update(nets)
    threads = torch.get_num_threads()
    try:
        with set_options(**options):
            torch.set_num_threads(OPTIONS["threads"])
            return fn(*args, **kwargs)
    finally:
        torch.set_num_threads(threads)
