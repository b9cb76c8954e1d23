"""Streaming nets: one pass over a whole series equals window-by-window application."""

import pytest
import torch

from upscale.learn.nets import NETS, StreamingNet, build_net
from upscale.learn.nets.streaming import dilations, split_reach
from upscale.learn.samples import window_views

from .conftest import untrained_model

STREAMING = sorted(name for name, net in NETS.items() if issubclass(net, StreamingNet))


def test_the_shipped_streaming_architectures_are_registered():
    assert STREAMING == ["causal_transformer", "tcn"]


def perturbed(architecture: str, memory: int) -> torch.nn.Module:
    """A net whose every weight is random, lag biases included (they start at 0)."""
    torch.manual_seed(memory)
    net = build_net(architecture, n_features=5, n_targets=3, memory=memory).eval()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return net


@pytest.mark.parametrize("architecture", STREAMING)
@pytest.mark.parametrize("memory", [1, 2, 6, 12, 24])
def test_one_pass_equals_window_by_window(architecture, memory):
    net = perturbed(architecture, memory)
    series = torch.randn(4, 50, 5)
    with torch.no_grad():
        streamed = net.forward_series(series)
        windowed = net(window_views(series, memory).reshape(-1, memory, 5)).reshape(4, -1, 3)
    assert streamed.shape == (4, 50 - memory + 1, 3)
    assert (streamed - windowed).abs().max() <= 1e-5


@pytest.mark.parametrize("architecture", STREAMING)
@pytest.mark.parametrize("memory", [1, 5, 12])
def test_a_month_reaches_exactly_the_next_memory_months(architecture, memory):
    net = perturbed(architecture, memory)
    series = torch.randn(1, 40, 5)
    changed = series.clone()
    changed[0, 20] += 1.0
    with torch.no_grad():
        moved = (net.forward_series(changed) - net.forward_series(series)).abs().sum(dim=-1)[0]
    months = (torch.nonzero(moved).flatten() + memory - 1).tolist()
    assert months == list(range(20, 20 + memory))


@pytest.mark.parametrize("architecture", STREAMING)
def test_windows_of_another_length_are_refused(architecture):
    net = build_net(architecture, n_features=4, n_targets=3, memory=6)
    with pytest.raises(ValueError, match="expected windows of 6 months"):
        net(torch.randn(2, 5, 4))


@pytest.mark.parametrize("memory", [1, 2, 3, 6, 12, 24, 36])
def test_reaches_add_up_to_the_memory(memory):
    assert sum(dilations(memory, least=2)) == memory - 1
    assert len(dilations(memory, least=2)) >= 2
    for parts in (1, 2, 3):
        reaches = split_reach(memory, parts)
        assert sum(reaches) == memory - 1 and max(reaches) - min(reaches) <= 1


@pytest.mark.parametrize("architecture", STREAMING)
def test_a_streaming_ensemble_predicts_what_its_windows_give(architecture):
    model = untrained_model("mangrove", memory=4, architecture=architecture, members=3)
    series = torch.randn(5, 30, len(model.card.features)) * 3 + 5
    out = model.predict_members(series, batch_size=40)  # a few pixels per block
    with torch.no_grad():
        for m, member in enumerate(model.members):
            windows = window_views(series, 4).reshape(-1, 4, series.shape[-1])
            expected = member.fluxes(windows).reshape(5, -1, 3)
            assert (out[m] - expected).abs().max() <= 1e-5
