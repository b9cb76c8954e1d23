import inspect

import pytest

from upscale import errors
from upscale.io.durable import refuse_overwrite
from upscale.io.stores import open_cube, open_maps

FAMILIES = (errors.InvalidInputError, errors.ServiceError, errors.OutputError)


def test_errors_holds_exceptions_only_each_in_one_family():
    members = dict(inspect.getmembers(errors, inspect.isclass))
    assert all(issubclass(cls, Exception) for cls in members.values())
    assert not [name for name, obj in inspect.getmembers(errors, inspect.isfunction)]
    failures = {
        name: cls
        for name, cls in members.items()
        if issubclass(cls, errors.UpscaleError) and cls not in (errors.UpscaleError, *FAMILIES)
    }
    assert len(failures) >= 12
    for name, cls in failures.items():
        assert sum(issubclass(cls, family) for family in FAMILIES) == 1, name
        assert name.endswith("Error") and cls.__doc__


def test_a_family_catches_its_members(tmp_path):
    with pytest.raises(errors.InvalidInputError):  # the user's data, not the disk
        open_cube(tmp_path / "none.zarr")
    with pytest.raises(errors.InvalidInputError) as caught:
        open_maps(tmp_path / "none.zarr")
    assert isinstance(caught.value, errors.InvalidMapsError)
    (tmp_path / "here.csv").write_text("x\n")
    with pytest.raises(errors.OutputError):
        refuse_overwrite([tmp_path / "here.csv"], overwrite=False)
