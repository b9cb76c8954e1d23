"""Training configs as YAML files: the shipped presets (``upscale/presets/``) and run records.

A config file holds the fields of [`TrainConfig`][upscale.learn.training.TrainConfig]; fields it
leaves out take their defaults. ``upscale train`` writes the resolved config of every run beside
its models, so ``upscale train --config that.yaml`` on the same data repeats it exactly.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from upscale.errors import InvalidConfigError
from upscale.learn.nets import NETS
from upscale.learn.training import TrainConfig


def preset_path(name: str) -> Path:
    """Return the YAML file of a shipped preset (see [`presets`][upscale.learn.config.presets])."""
    return Path(str(files("upscale") / "presets" / f"{name}.yaml"))


def presets() -> tuple[str, ...]:
    """Name the shipped presets: the study's settings of an architecture.

    A preset is a registered architecture ([`NETS`][upscale.learn.nets.NETS]) with a shipped file
    ``upscale/presets/<name>.yaml``. The list is made from the registry at each call, so
    that no architecture name is written twice.
    """
    return tuple(name for name in NETS if preset_path(name).is_file())


def load_train_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """Read a training config from YAML, with optional field overrides.

    Parameters
    ----------
    path
        YAML mapping of [`TrainConfig`][upscale.learn.training.TrainConfig] fields, or the name of
        a shipped preset ([`presets`][upscale.learn.config.presets]), so that no clone of the
        repository is needed to use them.
    **overrides
        Fields that replace the file's (e.g. from command-line options).

    Raises
    ------
    InvalidConfigError
        When the file is missing, not a YAML mapping, or has an unknown or invalid field.
    """
    path = Path(path)
    if not path.is_file() and str(path) in presets():  # a file of that name comes first
        path = preset_path(str(path))
    try:
        fields = yaml.safe_load(path.read_bytes()) or {}
    except FileNotFoundError:
        raise InvalidConfigError(
            f"{path}: no such config file; give a YAML file or a preset: {', '.join(presets())}"
        ) from None
    except OSError as err:  # a folder, or no permission
        raise InvalidConfigError(
            f"{path}: cannot be read as a config file ({err.strerror})"
        ) from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise InvalidConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(fields, dict):
        raise InvalidConfigError(f"{path}: a config is a mapping of field: value")
    return make_train_config(fields | overrides, source=str(path))


def make_train_config(fields: dict[str, Any], *, source: str = "options") -> TrainConfig:
    """Validate config fields, turning pydantic's report into one `InvalidConfigError` line."""
    names = [name for name in fields if not isinstance(name, str)]
    if names:
        raise InvalidConfigError(
            f"{source}: {names[0]!r} is not a field name; fields are "
            f"{', '.join(TrainConfig.model_fields)}"
        )
    try:
        return TrainConfig(**fields)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"])) or "config"
        raise InvalidConfigError(
            f"{source}: {where}: {first['msg']} ({err.error_count()} problem(s) in all; "
            f"fields are {', '.join(TrainConfig.model_fields)})"
        ) from None


def save_train_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the full config (every field, defaults included) as YAML."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return path
