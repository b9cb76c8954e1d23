import json
import pickle
from pathlib import Path

import pytest
import torch

from upscale.errors import InvalidModelError, OutputExistsError
from upscale.learn.artifact import CARD, WEIGHTS, load_model, save_model

from .conftest import TINY_HYPERPARAMETERS, untrained_model


@pytest.mark.parametrize("architecture", sorted(TINY_HYPERPARAMETERS))
def test_round_trip_gives_identical_predictions(tmp_path, architecture):
    model = untrained_model("mangrove", memory=4, architecture=architecture)
    folder = save_model(model, tmp_path / "m")
    loaded = load_model(folder)
    series = torch.randn(3, 12, len(model.card.features)) * 3 + 5
    torch.testing.assert_close(model.predict_series(series), loaded.predict_series(series))
    assert loaded.card == model.card


def test_card_is_plain_json(tmp_path):
    folder = save_model(untrained_model("saltmarsh"), tmp_path / "m")
    card = json.loads((folder / CARD).read_text())
    assert card["ecosystem"] == "saltmarsh"
    assert card["features"][0] == "LAI"
    assert card["memory"] == 3
    assert "torch" in card["versions"]


def test_loading_never_unpickles(tmp_path, monkeypatch):
    folder = save_model(untrained_model("mangrove"), tmp_path / "m")

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert load_model(folder).card.ecosystem == "mangrove"


class _Payload:
    """Unpickling this runs code: it creates the file ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("planted", [WEIGHTS, CARD])
def test_a_planted_pickle_payload_is_refused_and_never_runs(tmp_path, planted):
    folder = save_model(untrained_model("mangrove"), tmp_path / "m")
    marker = tmp_path / "payload-ran"
    (folder / planted).write_bytes(pickle.dumps(_Payload(marker)))
    torch.save({"payload": _Payload(marker)}, folder / "weights.pt")  # a torch checkpoint beside
    with pytest.raises(InvalidModelError, match=f"{planted}: not"):
        load_model(folder)
    assert not marker.exists()


def test_predict_members_matches_explicit_windows():
    model = untrained_model("mangrove", memory=3, members=3)
    series = torch.randn(2, 7, len(model.card.features))
    out = model.predict_members(series, batch_size=4)
    assert out.shape == (3, 2, 5, 3)
    with torch.no_grad():
        for m, member in enumerate(model.members):
            window = member.normalise(series[1, 2:5])[None]
            torch.testing.assert_close(out[m, 1, 2], member.denormalise(member.net(window))[0])
    torch.testing.assert_close(model.predict_series(series), out.mean(dim=0))


def test_derived_nee_balances_exactly():
    model = untrained_model("mangrove", nee_mode="derived")
    out = model.predict_members(torch.randn(4, 9, len(model.card.features)))
    torch.testing.assert_close(out[..., 2], out[..., 1] - out[..., 0])


def test_domain_distance_is_zero_on_reference_windows():
    model = untrained_model("mangrove", memory=3)
    scale = torch.tensor(model.card.domain.feature_std)
    window = model.reference_windows()[4]  # a tower window, as raw drivers
    distance = model.domain_distance(window[None])
    assert distance.shape == (1, 1)
    assert float(distance) == pytest.approx(0.0, abs=1e-3)
    far = model.domain_distance((window + 100 * scale)[None])
    assert float(far) > 1


def test_cards_need_two_members(tmp_path):
    folder = save_model(untrained_model("mangrove"), tmp_path / "m")
    card = json.loads((folder / CARD).read_text())
    card["members"] = card["members"][:1]
    (folder / CARD).write_text(json.dumps(card))
    with pytest.raises(InvalidModelError, match="members: List should have at least 2 items"):
        load_model(folder)


def test_missing_weights(tmp_path):
    folder = save_model(untrained_model("mangrove"), tmp_path / "m")
    (folder / WEIGHTS).unlink()
    with pytest.raises(InvalidModelError, match="no weights.safetensors"):
        load_model(folder)


def test_weights_of_another_architecture(tmp_path):
    folder = save_model(untrained_model("mangrove"), tmp_path / "m")
    card = json.loads((folder / CARD).read_text())
    card["hyperparameters"]["hidden"] = 16
    (folder / CARD).write_text(json.dumps(card))
    with pytest.raises(InvalidModelError, match="member 0 does not match the card"):
        load_model(folder)


def test_invalid_card(tmp_path):
    folder = save_model(untrained_model("mangrove"), tmp_path / "m")
    (folder / CARD).write_text('{"card_format": 2, "name": "x"}')
    with pytest.raises(InvalidModelError, match=r"not a valid model card: architecture: Field"):
        load_model(folder)


def test_card_of_another_format(tmp_path):
    folder = save_model(untrained_model("mangrove"), tmp_path / "m")
    card = json.loads((folder / CARD).read_text())
    card["card_format"] = 1
    (folder / CARD).write_text(json.dumps(card))
    with pytest.raises(InvalidModelError, match="card format 1 is not the format 2.*retrain"):
        load_model(folder)


def test_overwrite_replaces_the_whole_folder(tmp_path):
    folder = save_model(untrained_model("mangrove"), tmp_path / "m")
    (folder / "stale.txt").write_text("from an older model")
    save_model(untrained_model("saltmarsh"), folder, overwrite=True)
    assert not (folder / "stale.txt").exists()
    assert not (tmp_path / "m.partial").exists()
    assert load_model(folder).card.ecosystem == "saltmarsh"


def test_refuses_to_overwrite(tmp_path):
    save_model(untrained_model("mangrove"), tmp_path / "m")
    with pytest.raises(OutputExistsError):
        save_model(untrained_model("mangrove"), tmp_path / "m")


def test_corrupt_weights_and_reference(tmp_path):
    folder = save_model(untrained_model("mangrove"), tmp_path / "m")
    (folder / WEIGHTS).write_bytes(b"not a safetensors file")
    with pytest.raises(InvalidModelError, match="not a readable weights file"):
        load_model(folder)
    model = untrained_model("mangrove")
    model.reference = torch.randn(5, 7)
    folder = save_model(model, tmp_path / "n")
    with pytest.raises(InvalidModelError, match=r"domain.reference should be \(N, 30\)"):
        load_model(folder)
