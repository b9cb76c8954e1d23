import pytest
import torch

from upscale.learn.nets import NETS, build_net, is_tree_ensemble, resolve_hyperparameters

from .conftest import grow_random_trees


def _built(architecture, **sizes):
    """A net with random weights; boosted trees, which have none, grown on a random target."""
    net = build_net(architecture, **sizes)
    return grow_random_trees(net, seed=0) if is_tree_ensemble(architecture) else net


@pytest.mark.parametrize("architecture", sorted(NETS))
@pytest.mark.parametrize(("batch", "memory", "features"), [(1, 1, 3), (5, 6, 10), (7, 12, 4)])
def test_output_shape(architecture, batch, memory, features):
    net = _built(architecture, n_features=features, n_targets=3, memory=memory)
    out = net(torch.randn(batch, memory, features))
    assert out.shape == (batch, 3)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("architecture", sorted(NETS))
def test_last_month_matters(architecture):
    torch.manual_seed(0)
    net = _built(architecture, n_features=4, n_targets=3, memory=6).eval()
    x = torch.randn(2, 6, 4)
    y = x.clone()
    y[:, -1] += 1.0
    assert not torch.allclose(net(x), net(y))


def test_transformer_rejects_other_window_lengths():
    net = build_net("transformer", n_features=4, n_targets=3, memory=6)
    with pytest.raises(ValueError, match="expected windows of 6 months"):
        net(torch.randn(2, 5, 4))


def test_unknown_architecture():
    with pytest.raises(ValueError, match="unknown architecture 'gru'; choose one of lstm"):
        build_net("gru", n_features=4, n_targets=3, memory=6)


def test_hyperparameters_resolve_to_the_full_set():
    assert resolve_hyperparameters("lstm", hidden=32) == {"hidden": 32, "layers": 2, "dropout": 0.0}
    with pytest.raises(ValueError, match="unknown hyper-parameter\\(s\\) width for lstm"):
        resolve_hyperparameters("lstm", width=3)
