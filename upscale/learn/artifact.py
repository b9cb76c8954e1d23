"""Model artifacts: a folder with ``weights.safetensors`` and ``card.json``.

A model is an ensemble: the nets of its cross-validation folds, each trained without one
group of towers. Their mean is the prediction and their spread the uncertainty. The card
holds everything needed to rebuild and use them (architecture, hyper-parameters, ordered
features, memory, targets, each member's normalisation, the domain of applicability) and
everything a reader needs to trust them (ecosystem, towers and period, cross-validated
metrics, versions). The weights file holds the members' tensors (``member.<i>.<name>``) and
the reference windows of the domain of applicability. A boosted-trees model
([`BoostedTrees`][upscale.learn.nets.trees.BoostedTrees]) has no tensors of its own: each
member's trees of each flux are a file ``trees/member.<i>.<flux>.ubj`` in XGBoost's UBJSON
format, which the card lists with its SHA-256. Loading reads tensors with safetensors, JSON
with pydantic and trees with XGBoost's own parser, after checking each file against the
card: nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from upscale.errors import InvalidModelError
from upscale.io.durable import staged
from upscale.learn.balance import NeeMode, derive_nee
from upscale.learn.nets import BoostedTrees, StreamingNet, build_net
from upscale.learn.samples import window_views

WEIGHTS = "weights.safetensors"
CARD = "card.json"
CARD_FORMAT = 2
"""Version of the card's layout; bumped whenever a field changes meaning or shape."""
_MEMBER = "member.{}."
_REFERENCE = "domain.reference"
TREES = "trees"
"""Folder of a boosted-trees model's tree files, inside the model folder."""
_TREE_FILE = TREES + "/member.{}.{}.ubj"


class MemberCard(BaseModel):
    """One ensemble member: the towers it learned from and its normalisation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    training_sites: list[str]
    validation_sites: list[str] = Field(description="towers of its early stopping")
    held_out_sites: list[str] = Field(description="towers of its cross-validation fold")
    held_out_months: dict[str, str] = Field(
        default_factory=dict,
        description="with a temporal split: each tower's first held-out month (YYYY-MM)",
    )
    feature_mean: list[float]
    feature_std: list[float]
    target_mean: list[float]
    target_std: list[float]


class DomainCard(BaseModel):
    """How the domain of applicability is measured (see `Model.domain_distance`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feature_mean: list[float]
    feature_std: list[float]
    threshold: float = Field(
        description="95th percentile of the distance from a tower window to the nearest "
        "window of another tower (RMS over the scaled window's values)"
    )
    """Distance beyond which a window is outside the domain of applicability."""
    reference_windows: int


class TreeFileCard(BaseModel):
    """One tree file of a boosted-trees model: a member's trees of one flux."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    member: int = Field(ge=0)
    target: str
    path: str = Field(description="inside the model folder, e.g. trees/member.0.GPP.ubj")
    format: Literal["ubjson"] = "ubjson"
    sha256: str = Field(description="of the file's bytes; a file that differs is refused")
    trees: int = Field(ge=1, description="boosting rounds kept after early stopping")


class ModelCard(BaseModel):
    """Description of a trained ensemble, stored as ``card.json`` beside its weights."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    card_format: int = CARD_FORMAT
    name: str
    architecture: str
    hyperparameters: dict[str, Any]
    memory: int
    features: list[str]
    feature_sources: dict[str, str] = Field(
        default_factory=dict, description="feature -> 'cube' or 'tower' (the towers' own data)"
    )
    feature_units: dict[str, str] = Field(
        default_factory=dict, description="feature -> units; 'as given' where no file says"
    )
    towers: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="tower -> its file, format and the method behind each flux",
    )
    targets: list[str]
    nee_mode: NeeMode
    ecosystem: str
    sites: list[str]
    training_period: tuple[str, str]
    members: list[MemberCard] = Field(min_length=2)
    domain: DomainCard
    cv_scheme: str
    cv_metrics: dict[str, dict[str, dict[str, float]]]
    cv_folds: dict[str, dict[str, dict[str, float]]] = Field(
        default_factory=dict, description="flux -> fold number -> held-out scores"
    )
    cv_fold_sites: list[list[str]] = Field(
        default_factory=list, description="the towers each fold scores, in fold number order"
    )
    cv_towers: dict[str, dict[str, dict[str, float]]] = Field(
        default_factory=dict, description="flux -> tower -> held-out scores"
    )
    tree_files: list[TreeFileCard] = Field(
        default_factory=list,
        description="a boosted-trees model's files: one per member and flux, in that order",
    )
    train_config: dict[str, Any]
    data: dict[str, str]
    versions: dict[str, str]
    created: str


def software_versions() -> dict[str, str]:
    """Versions of the packages that shape a model's numbers, for cards and provenance."""
    packages = ("upscale", "torch", "numpy", "xarray", "zarr", "dask")
    return {"python": platform.python_version()} | {p: version(p) for p in packages}


@dataclass
class Member:
    """A trained net with its normalisation: scaled drivers in, fluxes in gC m-2 d-1 out."""

    net: torch.nn.Module
    card: MemberCard

    def __post_init__(self) -> None:
        self.net.eval()
        self._x_mean = torch.tensor(self.card.feature_mean, dtype=torch.float32)
        self._x_std = torch.tensor(self.card.feature_std, dtype=torch.float32)
        self._y_mean = torch.tensor(self.card.target_mean, dtype=torch.float32)
        self._y_std = torch.tensor(self.card.target_std, dtype=torch.float32)

    def to(self, device: torch.device | str) -> Member:
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

    def fluxes(self, windows: torch.Tensor) -> torch.Tensor:
        """Fluxes ``(N, K)`` in gC m-2 d-1 of raw driver windows ``(N, L, F)``."""
        return self.denormalise(self.net(self.normalise(windows)))


@dataclass
class Model:
    """A trained ensemble with its card: the members and the domain of applicability.

    Attributes
    ----------
    members
        The ensemble members (the cross-validation folds' nets).
    card
        The [`ModelCard`][upscale.learn.artifact.ModelCard].
    reference
        ``(N, L * F)`` tower windows, scaled with the domain statistics, against which
        [`domain_distance`][upscale.learn.artifact.Model.domain_distance] measures how far a
        window is from the training data.
    """

    members: list[Member]
    card: ModelCard
    reference: torch.Tensor

    def __post_init__(self) -> None:
        self._d_mean = torch.tensor(self.card.domain.feature_mean, dtype=torch.float32)
        self._d_std = torch.tensor(self.card.domain.feature_std, dtype=torch.float32)

    @property
    def memory(self) -> int:
        """Window length L in months."""
        return self.card.memory

    def to(self, device: torch.device | str) -> Model:
        """Move members, reference and statistics to ``device`` (in place) and return self."""
        for member in self.members:
            member.to(device)
        self.reference = self.reference.to(device)
        self._d_mean, self._d_std = self._d_mean.to(device), self._d_std.to(device)
        return self

    def _pixel_blocks(
        self, drivers: torch.Tensor, batch_size: int
    ) -> Iterator[tuple[slice, torch.Tensor]]:
        """Yield pixel rows and their series ``(p, T, F)``, about ``batch_size`` windows a block."""
        n_pixels, n_months, _ = drivers.shape
        n_windows = n_months - self.memory + 1
        if n_windows < 1:
            raise ValueError(f"series of {n_months} months is shorter than memory {self.memory}")
        step = max(1, batch_size // n_windows)
        for start in range(0, n_pixels, step):
            block = drivers[start : start + step]
            yield slice(start, start + len(block)), block

    def _windows(self, series: torch.Tensor) -> torch.Tensor:
        """Every window ``(p * W, L, F)`` of series ``(p, T, F)``, made contiguous."""
        return window_views(series, self.memory).reshape(-1, self.memory, series.shape[-1])

    def _member_series(self, member: Member, series: torch.Tensor) -> torch.Tensor:
        """Fluxes ``(p, W, K)`` of one member over every full window of series ``(p, T, F)``.

        A [`StreamingNet`][upscale.learn.nets.streaming.StreamingNet] runs over the whole
        series at once, computing each month once; other nets run window by window.
        """
        if isinstance(member.net, StreamingNet):
            return member.denormalise(member.net.forward_series(member.normalise(series)))
        fluxes = member.fluxes(self._windows(series))
        return fluxes.reshape(len(series), -1, fluxes.shape[-1])

    @torch.inference_mode()
    def predict_members(
        self,
        drivers: torch.Tensor,
        *,
        batch_size: int = 2048,
        members: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Predict every full window of many monthly series with every member.

        Parameters
        ----------
        drivers
            ``(P, T, F)`` raw drivers of P pixels or towers, features in card order.
        batch_size
            Windows per forward pass; pixels are batched so that each pass holds about this
            many windows (1k-8k is fastest on CPU, NOTES.md).
        members
            Indices of the members to run; all by default.

        Returns
        -------
        torch.Tensor
            ``(M, P, T - L + 1, K)`` fluxes in gC m-2 d-1; entry ``t`` is the window ending
            at month ``t + L - 1``. With ``nee_mode`` ``derived``, NEE is RE - GPP.

        Notes
        -----
        Windows are strided views ([`window_views`][upscale.learn.samples.window_views]); only the
        current batch is made contiguous for the nets. Streaming nets take the batch's series
        whole.
        """
        chosen = [self.members[m] for m in members] if members is not None else self.members
        n_pixels, n_months, _ = drivers.shape
        n_windows = n_months - self.memory + 1
        shape = (len(chosen), n_pixels, n_windows, len(self.card.targets))
        out = torch.empty(shape, device=drivers.device)
        for rows, series in self._pixel_blocks(drivers, batch_size):
            for m, member in enumerate(chosen):
                out[m, rows] = self._member_series(member, series)
        return self._balanced(out)

    def _balanced(self, fluxes: torch.Tensor) -> torch.Tensor:
        """Apply the card's NEE mode to fluxes ``(..., K)``."""
        if self.card.nee_mode == "derived":
            return derive_nee(fluxes, self.card.targets)
        return fluxes

    def ensemble_fluxes(self, windows: torch.Tensor) -> torch.Tensor:
        """Differentiable ensemble-mean fluxes ``(N, K)`` of raw driver windows ``(N, L, F)``.

        The function that explanations attribute (see
        [`upscale.learn.attribution`][upscale.learn.attribution]).
        """
        stacked = torch.stack([member.fluxes(windows) for member in self.members])
        return self._balanced(stacked.mean(dim=0))

    def predict_series(self, drivers: torch.Tensor, *, batch_size: int = 2048) -> torch.Tensor:
        """Ensemble mean ``(P, T - L + 1, K)`` of `predict_members`."""
        return self.predict_members(drivers, batch_size=batch_size).mean(dim=0)

    def reference_windows(self) -> torch.Tensor:
        """Return the towers' reference windows as raw drivers ``(N, L, F)``."""
        windows = self.reference.reshape(len(self.reference), self.memory, -1)
        return windows * self._d_std + self._d_mean

    @torch.inference_mode()
    def domain_distance(self, drivers: torch.Tensor, *, batch_size: int = 2048) -> torch.Tensor:
        """How far each window is from the towers' windows, in units of the threshold.

        Parameters
        ----------
        drivers
            ``(P, T, F)`` raw drivers, features in card order.
        batch_size
            Windows compared at once.

        Returns
        -------
        torch.Tensor
            ``(P, T - L + 1)``: the RMS distance between the scaled window and its nearest tower
            window, divided by
            [`DomainCard.threshold`][upscale.learn.artifact.DomainCard.threshold]. Above 1, a
            window is farther from every tower window than 95 % of tower windows are from
            those of the other towers: the model extrapolates.
        """
        scaled = (drivers - self._d_mean) / self._d_std
        n_pixels, n_months, n_features = drivers.shape
        n_windows = n_months - self.memory + 1
        out = torch.empty(n_pixels, n_windows, device=drivers.device)
        reference_norms = self.reference.square().sum(dim=1)
        # Windows per product: its (windows x reference) matrix stays under 64 MB.
        batch_size = max(1, min(batch_size, _DISTANCE_ELEMENTS // len(self.reference)))
        for rows, series in self._pixel_blocks(scaled, batch_size):
            flat = self._windows(series).reshape(-1, self.memory * n_features)
            # |w - r|^2 = |w|^2 + |r|^2 - 2 w.r: one matrix product, then the minimum, and
            # only the nearest distances are square-rooted (cdist roots all of them).
            squared = torch.addmm(reference_norms, flat, self.reference.T, alpha=-2).amin(dim=1)
            nearest = (squared + flat.square().sum(dim=1)).clamp_min_(0).sqrt_()
            out[rows] = (nearest / flat.shape[1] ** 0.5).reshape(-1, n_windows)
        return out / self.card.domain.threshold


_DISTANCE_ELEMENTS = 2**24
"""Largest (windows x reference windows) distance matrix made at once (64 MB of float32)."""


def save_model(model: Model, folder: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``weights.safetensors``, ``card.json`` and a boosted-trees model's tree files.

    The card written lists the tree files with their SHA-256, and becomes the model's card.

    Raises
    ------
    OutputExistsError
        When the folder exists and ``overwrite`` is False.
    """
    folder = Path(folder)
    card = model.card
    # Every file goes to a sibling folder that replaces the old one whole: a crash never
    # leaves new weights beside an old card.
    with staged(folder, overwrite=overwrite) as partial:
        partial.mkdir(parents=True)
        tensors = {
            _MEMBER.format(m) + key: value.detach().cpu().contiguous()
            for m, member in enumerate(model.members)
            for key, value in member.net.state_dict().items()
        }
        tensors[_REFERENCE] = model.reference.detach().cpu().contiguous()
        save_file(tensors, partial / WEIGHTS, metadata={"format": "pt", "card": CARD})
        if any(isinstance(member.net, BoostedTrees) for member in model.members):
            card = card.model_copy(update={"tree_files": _write_trees(model, partial)})
        (partial / CARD).write_text(json.dumps(card.model_dump(mode="json"), indent=2) + "\n")
    model.card = card
    return folder


def _write_trees(model: Model, folder: Path) -> list[TreeFileCard]:
    """Write each member's trees of each flux as UBJSON; return the card's list of them."""
    (folder / TREES).mkdir()
    files = []
    for m, member in enumerate(model.members):
        net = member.net
        for target, raw, kept in zip(model.card.targets, net.to_ubjson(), net.kept, strict=True):
            path = _TREE_FILE.format(m, target)
            (folder / path).write_bytes(raw)
            files.append(
                TreeFileCard(
                    member=m,
                    target=target,
                    path=path,
                    sha256=hashlib.sha256(raw).hexdigest(),
                    trees=kept,
                )
            )
    return files


def _read_trees(folder: Path, card: ModelCard, member: int) -> list[bytes]:
    """Read one member's tree files, in flux order, after checking each against the card.

    A file must be where the card's layout puts it, start as a UBJSON (or JSON) object does,
    and have the SHA-256 the card lists: anything else, a pickle planted in its place
    included, is refused before XGBoost reads a byte of it.
    """
    listed = [entry for entry in card.tree_files if entry.member == member]
    if [entry.target for entry in listed] != card.targets:
        raise InvalidModelError(
            f"{folder / CARD}: tree_files should list member {member}'s trees of "
            f"{', '.join(card.targets)}, in that order; retrain the model (upscale train)"
        )
    models = []
    for entry in listed:
        path = folder / entry.path
        if entry.path != _TREE_FILE.format(member, entry.target) or not path.is_file():
            raise InvalidModelError(
                f"{path}: not found; a boosted-trees model keeps its "
                f"{_TREE_FILE.format('<i>', '<flux>')} files beside its card (written by "
                "`upscale train`)"
            )
        raw = path.read_bytes()
        if not raw.lstrip()[:1] == b"{":
            raise InvalidModelError(
                f"{path}: not an XGBoost UBJSON or JSON model (it starts with {raw[:2]!r}); "
                "tree files are never unpickled: restore the model folder or retrain it"
            )
        if hashlib.sha256(raw).hexdigest() != entry.sha256:
            raise InvalidModelError(
                f"{path}: not the file its card lists (its SHA-256 differs): it was changed "
                "or replaced; restore the model folder or retrain it"
            )
        models.append(raw)
    return models


def _require(folder: Path, name: str) -> Path:
    if not (folder / name).is_file():
        raise InvalidModelError(
            f"{folder}: no {name}; a model folder holds {CARD} and {WEIGHTS} "
            "(written by `upscale train`)"
        )
    return folder / name


def read_card(folder: str | Path) -> ModelCard:
    """Read and validate a model's card without loading its weights.

    Raises
    ------
    InvalidModelError
        When the folder has no card, or the card is of another format or invalid.
    """
    path = _require(Path(folder), CARD)
    try:
        raw = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidModelError(f"{path}: not JSON ({err})") from None
    found = raw.get("card_format") if isinstance(raw, dict) else None
    if found != CARD_FORMAT:
        raise InvalidModelError(
            f"{path}: card format {found} is not the format {CARD_FORMAT} of upscale "
            f"{version('upscale')}; retrain the model with this version (upscale train)"
        )
    try:
        return ModelCard.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise InvalidModelError(
            f"{path}: not a valid model card: {where}: {first['msg']} "
            f"({err.error_count()} problem(s) in all)"
        ) from None


def load_model(folder: str | Path) -> Model:
    """Rebuild an ensemble from its folder without unpickling anything.

    Tensors are read with safetensors, the card with pydantic, tree files (checked against
    the card first) with XGBoost's own UBJSON parser.

    Raises
    ------
    InvalidModelError
        When a file is missing, the card is invalid, or the weights do not fit the card.
    """
    folder = Path(folder)
    card = read_card(folder)
    try:
        tensors = load_file(_require(folder, WEIGHTS))
    except SafetensorError as err:
        raise InvalidModelError(
            f"{folder / WEIGHTS}: not a readable weights file ({err})"
        ) from None
    members = []
    for m, member_card in enumerate(card.members):
        prefix = _MEMBER.format(m)
        net = build_net(
            card.architecture,
            n_features=len(card.features),
            n_targets=len(card.targets),
            memory=card.memory,
            **card.hyperparameters,
        )
        state = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise InvalidModelError(
                f"{folder / WEIGHTS}: member {m} does not match the card's architecture "
                f"({str(err).splitlines()[0]})"
            ) from None
        if isinstance(net, BoostedTrees):
            try:
                net.load_ubjson(_read_trees(folder, card, m))
            except ValueError as err:
                raise InvalidModelError(
                    f"{folder / TREES}: member {m}'s trees do not load ({err}); retrain the model"
                ) from None
        members.append(Member(net=net, card=member_card))
    expected = card.memory * len(card.features)
    reference = tensors.get(_REFERENCE)
    if reference is None or reference.ndim != 2 or reference.shape[1] != expected:
        raise InvalidModelError(
            f"{folder / WEIGHTS}: {_REFERENCE} should be (N, {expected}) tower windows "
            f"(memory x features), found {None if reference is None else tuple(reference.shape)}"
        )
    for name in ("feature_mean", "feature_std"):
        if len(getattr(card.domain, name)) != len(card.features):
            raise InvalidModelError(f"{folder / CARD}: domain.{name} does not match features")
    return Model(members=members, card=card, reference=reference)


def as_float_list(values: np.ndarray) -> list[float]:
    """Convert an array of statistics to plain floats for the card."""
    return [float(v) for v in np.asarray(values, dtype="float64")]
