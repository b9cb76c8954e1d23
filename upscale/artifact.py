"""Model artifacts: a folder with ``weights.safetensors`` and ``card.json``.

The card holds everything needed to rebuild and use a net (architecture, hyper-parameters,
ordered features, normalisation, memory, targets) and everything a reader needs to trust it
(ecosystem, training sites and period, cross-validated metrics, versions). Loading reads
tensors with safetensors and JSON with pydantic: nothing is ever unpickled.
"""

from __future__ import annotations

import json
import platform
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from safetensors.torch import load_file, save_file

from upscale.errors import ModelArtifactError, OutputExistsError
from upscale.nets import build_net

WEIGHTS = "weights.safetensors"
CARD = "card.json"
CARD_FORMAT = 1
"""Version of the card's layout; bumped whenever a field changes meaning or shape."""


class ModelCard(BaseModel):
    """Description of a trained model, stored as ``card.json`` beside its weights."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    card_format: int = CARD_FORMAT
    name: str
    architecture: str
    hyperparameters: dict[str, Any]
    memory: int
    features: list[str]
    feature_mean: list[float]
    feature_std: list[float]
    targets: list[str]
    target_mean: list[float]
    target_std: list[float]
    ecosystem: str
    training_sites: list[str]
    validation_sites: list[str]
    training_period: tuple[str, str]
    cv_scheme: str
    cv_metrics: dict[str, dict[str, dict[str, float]]]
    train_config: dict[str, Any]
    data: dict[str, str]
    versions: dict[str, str]
    created: str


def software_versions() -> dict[str, str]:
    """Versions of the packages that shape a model's numbers, for cards and provenance."""
    packages = ("upscale", "torch", "numpy", "xarray", "zarr", "dask")
    return {"python": platform.python_version()} | {p: version(p) for p in packages}


def utc_now() -> str:
    """Return the current time as an ISO 8601 UTC string."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Model:
    """A trained net with its card: normalises inputs and returns fluxes in physical units.

    Attributes
    ----------
    net
        The torch module, in eval mode.
    card
        Its :class:`ModelCard`.
    """

    net: torch.nn.Module
    card: ModelCard

    def __post_init__(self) -> None:
        self.net.eval()
        self._x_mean = torch.tensor(self.card.feature_mean, dtype=torch.float32)
        self._x_std = torch.tensor(self.card.feature_std, dtype=torch.float32)
        self._y_mean = torch.tensor(self.card.target_mean, dtype=torch.float32)
        self._y_std = torch.tensor(self.card.target_std, dtype=torch.float32)

    @property
    def memory(self) -> int:
        """Window length L in months."""
        return self.card.memory

    def to(self, device: torch.device | str) -> Model:
        """Move the net and the normalisation to ``device`` (in place) and return self."""
        self.net.to(device)
        for name in ("_x_mean", "_x_std", "_y_mean", "_y_std"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def normalise(self, drivers: torch.Tensor) -> torch.Tensor:
        """Scale drivers ``(..., F)`` with the training mean and standard deviation."""
        return (drivers - self._x_mean) / self._x_std

    def normalise_targets(self, fluxes: torch.Tensor) -> torch.Tensor:
        """Scale fluxes ``(..., K)`` in gC m-2 d-1 as the net's outputs are scaled."""
        return (fluxes - self._y_mean) / self._y_std

    def denormalise(self, outputs: torch.Tensor) -> torch.Tensor:
        """Turn net outputs ``(..., K)`` back into fluxes in gC m-2 d-1."""
        return outputs * self._y_std + self._y_mean

    @torch.inference_mode()
    def predict_series(self, drivers: torch.Tensor, *, batch_size: int = 2048) -> torch.Tensor:
        """Predict every full window of many monthly series.

        Parameters
        ----------
        drivers
            ``(P, T, F)`` raw drivers of P pixels or sites, features in card order.
        batch_size
            Windows per forward pass; pixels are batched so that each pass holds about this
            many windows (1k-8k is fastest on CPU, NOTES.md).

        Returns
        -------
        torch.Tensor
            ``(P, T - L + 1, K)`` fluxes; entry ``t`` is the window ending at month
            ``t + L - 1``.

        Notes
        -----
        Windows are strided views (``Tensor.unfold``) of the normalised series; only the
        current batch is made contiguous for the net.
        """
        n_pixels, n_months, _ = drivers.shape
        n_windows = n_months - self.memory + 1
        if n_windows < 1:
            raise ValueError(f"series of {n_months} months is shorter than memory {self.memory}")
        scaled = self.normalise(drivers)
        out = torch.empty(n_pixels, n_windows, len(self.card.targets), device=drivers.device)
        step = max(1, batch_size // n_windows)
        for start in range(0, n_pixels, step):
            block = scaled[start : start + step]
            windows = block.unfold(1, self.memory, 1).transpose(2, 3)  # (p, W, L, F) view
            flat = windows.reshape(-1, self.memory, windows.shape[-1])
            pred = self.denormalise(self.net(flat))
            out[start : start + step] = pred.reshape(block.shape[0], n_windows, -1)
        return out


def save_model(model: Model, folder: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``weights.safetensors`` and ``card.json`` into ``folder``.

    Raises
    ------
    OutputExistsError
        When the folder holds a model and ``overwrite`` is False.
    """
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise OutputExistsError(f"{folder} exists; pass --overwrite to replace it")
    # Both files go to a sibling folder that replaces the old one whole: a crash never
    # leaves new weights beside an old card.
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()}
    save_file(tensors, partial / WEIGHTS, metadata={"format": "pt", "card": CARD})
    (partial / CARD).write_text(json.dumps(model.card.model_dump(mode="json"), indent=2) + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    partial.rename(folder)
    return folder


def _require(folder: Path, name: str) -> Path:
    if not (folder / name).is_file():
        raise ModelArtifactError(
            f"{folder}: no {name}; a model folder holds {CARD} and {WEIGHTS} "
            "(written by `upscale train`)"
        )
    return folder / name


def read_card(folder: str | Path) -> ModelCard:
    """Read and validate a model's card without loading its weights.

    Raises
    ------
    ModelArtifactError
        When the folder has no card or the card is invalid.
    """
    path = _require(Path(folder), CARD)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ModelArtifactError(f"{path}: not JSON ({err})") from None
    found = raw.get("card_format") if isinstance(raw, dict) else None
    if found != CARD_FORMAT:
        raise ModelArtifactError(
            f"{path}: card format {found} is not the format {CARD_FORMAT} of upscale "
            f"{version('upscale')}; retrain the model with this version (upscale train)"
        )
    try:
        return ModelCard.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise ModelArtifactError(
            f"{path}: not a valid model card: {where}: {first['msg']} "
            f"({err.error_count()} problem(s) in all)"
        ) from None


def load_model(folder: str | Path) -> Model:
    """Rebuild a model from its folder without unpickling anything.

    Raises
    ------
    ModelArtifactError
        When a file is missing, the card is invalid, or the weights do not fit the card.
    """
    folder = Path(folder)
    card = read_card(folder)
    _require(folder, WEIGHTS)
    net = build_net(
        card.architecture,
        n_features=len(card.features),
        n_targets=len(card.targets),
        memory=card.memory,
        **card.hyperparameters,
    )
    try:
        net.load_state_dict(load_file(folder / WEIGHTS))
    except (RuntimeError, OSError) as err:
        raise ModelArtifactError(
            f"{folder / WEIGHTS}: weights do not match the card's architecture ({err})"
        ) from None
    return Model(net=net, card=card)


def as_float_list(values: np.ndarray) -> list[float]:
    """Convert an array of statistics to plain floats for the card."""
    return [float(v) for v in np.asarray(values, dtype="float64")]
