"""Property-based tests: any input either parses to valid data or raises upscale's own error.

Each test has a fixed budget and a fixed seed (``derandomize``), so CI runs the same cases
every time; failures print the smallest input that breaks the property.
"""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from upscale.errors import UpscaleError
from upscale.learn.config import load_train_config
from upscale.learn.training import TrainConfig
from upscale.towers.fluxnet import read_fluxnet

BUDGET = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

FLUX_COLUMNS = ["GPP_NT_VUT_REF", "RECO_NT_VUT_REF", "NEE_VUT_REF", "NEE_VUT_REF_QC", "TA_F", "P_F"]
TIME_FORMATS = {"HH": "%Y%m%d%H%M", "DD": "%Y%m%d", "MM": "%Y%m"}


def _in_file(name: str, content: bytes, check) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(content)
        check(path)


numbers = st.one_of(
    st.floats(-50, 50, width=32),  # mostly plausible numbers, so that files also parse
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([-9999, -9999.0, 0, 1e30, -1e30]),
)
garbage = st.one_of(numbers, st.text(alphabet="0123456789.-eEaN x", max_size=6))


@st.composite
def fluxnet_files(draw) -> tuple[str, bytes]:
    """A FLUXNET-like CSV, tidy or messy.

    Tidy files have every column, numbers and well-formed, mostly regular timestamps (with
    repeats, steps back and gaps); messy ones also drop columns, write text in numeric
    columns or timestamps in another format.
    """
    messy = draw(st.booleans())
    res = draw(st.sampled_from(sorted(TIME_FORMATS)))
    columns = list(FLUX_COLUMNS)
    if messy:
        dropped = draw(st.sets(st.sampled_from(FLUX_COLUMNS), max_size=2))
        columns = [c for c in columns if c not in dropped]
        extra = st.sampled_from(["GPP_DT_VUT_REF", "SW_IN_F", "junk"])
        columns += draw(st.lists(extra, unique=True, max_size=2))
    n_rows = draw(st.integers(0, 60 if res == "MM" else 400))
    start = draw(
        st.datetimes(min_value=pd.Timestamp("1990-01-01"), max_value=pd.Timestamp("2030-01-01"))
    )
    step_sizes = st.sampled_from([1] * 20 + [0, 2, -1, 40])  # repeats, steps back, gaps
    steps = draw(st.lists(step_sizes, min_size=n_rows, max_size=n_rows))
    step = {"HH": pd.Timedelta(minutes=30), "DD": pd.Timedelta(days=1), "MM": pd.Timedelta(days=31)}
    times = [pd.Timestamp(start) + k * step[res] for k in np.cumsum(steps)]
    stamps = [t.strftime(TIME_FORMATS[res]) for t in times]
    if messy and draw(st.booleans()):
        stamps = [draw(st.text(alphabet="0123456789-/ :", max_size=14)) for _ in stamps]
    header = ["TIMESTAMP_START" if res == "HH" else "TIMESTAMP", *columns]
    cells = garbage if messy and draw(st.booleans()) else numbers
    rows = [[stamp, *(str(draw(cells)) for _ in columns)] for stamp in stamps]
    text = "\n".join(",".join(row) for row in [header, *rows]) + "\n"
    name = f"FLX_US-Fuz_FLUXNET2015_FULLSET_{res}_1990-2030_1-4.csv"
    return name, text.encode()


@BUDGET
@given(fluxnet_files())
def test_fluxnet_reader_gives_monthly_data_or_its_own_error(case):
    name, content = case

    def check(path: Path) -> None:
        try:
            monthly = read_fluxnet(path)
        except UpscaleError:
            return
        index = monthly.index
        assert index.is_monotonic_increasing and index.is_unique
        assert (index == index.to_period("M").to_timestamp()).all()  # month starts
        assert len(pd.date_range(index[0], index[-1], freq="MS")) == len(index)  # no gap
        fluxes = monthly[["GPP", "RE", "NEE"]].to_numpy(dtype=float)
        assert not np.isinf(fluxes).any()
        assert np.isfinite(fluxes).any()

    _in_file(name, content, check)


@BUDGET
@given(st.binary(max_size=200))
def test_fluxnet_reader_refuses_any_bytes_with_its_own_error(content):
    def check(path: Path) -> None:
        try:
            read_fluxnet(path)
        except UpscaleError:
            pass

    _in_file("FLX_US-Fuz_FLUXNET2015_FULLSET_DD_2004-2005_1-4.csv", content, check)


yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
config_keys = st.one_of(
    st.sampled_from(sorted(TrainConfig.model_fields)), st.text(max_size=8), st.integers()
)


@BUDGET
@given(st.dictionaries(config_keys, yaml_values, max_size=5))
def test_config_loader_gives_a_config_or_its_own_error(fields):
    def check(path: Path) -> None:
        try:
            config = load_train_config(path)
        except UpscaleError:
            return
        assert isinstance(config, TrainConfig)

    _in_file("config.yaml", yaml.safe_dump(fields).encode(), check)


@BUDGET
@given(st.binary(max_size=120))
def test_config_loader_refuses_any_bytes_with_its_own_error(content):
    def check(path: Path) -> None:
        try:
            load_train_config(path)
        except UpscaleError:
            pass

    _in_file("config.yaml", content, check)
