"""Earth Engine offline: real expressions built with earthengine-api's own test helpers,
and a fake computePixels standing in for the server to test tiling, assembly, retries
and resume."""

import json
import re

import ee
import numpy as np
import pandas as pd
import pytest
from ee import apitestcase

from upscale.drivers.earthengine import (
    EE_DRIVERS,
    NODATA,
    RECIPES,
    call_with_retries,
    export_tasks,
    fetch_cube,
    fetch_points,
    initialize,
    month_image,
    pixel_grid,
    points_expression,
)
from upscale.errors import FetchFailedError
from upscale.grid import TargetGrid
from upscale.io.stores import open_cube, open_store

GRID = TargetGrid("EPSG:4326", (-81.9, 25.1, -81.4, 25.5), 0.05)  # 8 x 10 pixels
PERIOD = ("2019-01", "2019-05")
VARIABLES = ("NDVI", "TA")


@pytest.fixture
def offline_ee():
    """Earth Engine initialised offline with the frozen algorithm list (no network)."""
    case = apitestcase.ApiTestCase()
    case.setUp()
    yield
    case.tearDown()


def expected_value(variable, month, row, col):
    base = {"NDVI": 0.5, "TA": 20.0}[variable]
    return base + 0.01 * month.month + 0.001 * row + 0.0001 * col


class FakeServer:
    """computePixels on the target grid: a structured array with a field per band."""

    def __init__(self, fail_at=(), transient=0, masked=()):
        self.calls = 0
        self.fail_at = set(fail_at)
        self.transient = transient
        self.masked = set(masked)  # (row, col, "YYYY-MM") pixel-months the server masks

    def __call__(self, params):
        self.calls += 1
        assert params["fileFormat"] == "NUMPY_NDARRAY"
        assert isinstance(params["expression"], ee.Image)
        if self.transient:
            self.transient -= 1
            raise ee.EEException("Too Many Requests: Earth Engine quota exceeded.")
        if self.calls in self.fail_at:
            raise ee.EEException("Image.load: Asset not found.")
        grid = params["grid"]
        affine = grid["affineTransform"]
        row0 = round((GRID.bounds[3] - affine["translateY"]) / GRID.resolution)
        col0 = round((affine["translateX"] - GRID.bounds[0]) / GRID.resolution)
        height, width = grid["dimensions"]["height"], grid["dimensions"]["width"]
        months = pd.date_range(*PERIOD, freq="MS")
        fields = [(f"{v}_{m:%Y-%m}", "<f4") for m in months for v in VARIABLES]
        out = np.zeros((height, width), dtype=fields)
        rows, cols = np.mgrid[row0 : row0 + height, col0 : col0 + width]
        for m in months:
            for v in VARIABLES:
                values = expected_value(v, m, rows, cols).astype("float32")
                for r, c, month in self.masked:
                    if month == f"{m:%Y-%m}":
                        values[(rows == r) & (cols == c)] = NODATA
                out[f"{v}_{m:%Y-%m}"] = values
        return out


def fetch(tmp_path, server, **options):
    return fetch_cube(
        GRID,
        PERIOD,
        tmp_path / "cube.zarr",
        variables=VARIABLES,
        tile=4,
        months_per_request=2,
        compute_pixels=server,
        sleep=lambda seconds: None,
        **options,
    )


def test_every_driver_has_a_serialisable_expression(offline_ee):
    for variable in EE_DRIVERS:
        text = month_image([variable], pd.Timestamp("2019-02-01")).serialize()
        assert "2019-02-01" in text and "2019-03-01" in text  # the month's filterDate
        if variable in RECIPES:
            recipe = RECIPES[variable]
            assert recipe.collection in text and recipe.band in text
        else:
            assert "dewpoint_temperature_2m" in text and "Image.exp" in text


def test_expressions_carry_scale_factors_qc_and_units(offline_ee):
    ndvi = json.loads(month_image(["NDVI"], pd.Timestamp("2019-02-01")).serialize())
    text = json.dumps(ndvi)
    assert "0.0001" in text and "SummaryQA" in text and "Image.lte" in text
    lst = month_image(["LST_DAY"], pd.Timestamp("2019-02-01")).serialize()
    assert "0.02" in lst and "-273.15" in lst and "QC_Day" in lst and "bitwiseAnd" in lst
    precip = month_image(["PRECIP"], pd.Timestamp("2019-02-01")).serialize()
    assert "total_precipitation_sum" in precip and '"constantValue": 28' in precip  # days
    assert f'"constantValue": {NODATA}' in precip  # masked pixels come down as NODATA


def test_pixel_grid_follows_the_target_grid():
    request = pixel_grid(GRID, slice(4, 8), slice(8, 10))
    assert request["dimensions"] == {"width": 2, "height": 4}
    affine = request["affineTransform"]
    assert affine["translateX"] == pytest.approx(-81.9 + 8 * 0.05)
    assert affine["translateY"] == pytest.approx(25.5 - 4 * 0.05)
    assert affine["scaleY"] == pytest.approx(-0.05) and request["crsCode"] == "EPSG:4326"


def test_tiles_assemble_into_the_cube(offline_ee, tmp_path):
    server = FakeServer(masked={(2, 3, "2019-02")})
    cube = open_cube(fetch(tmp_path, server), VARIABLES)
    assert server.calls == 3 * 2 * 3  # 3 blocks of months x 2 x 3 tiles of 4 x 4
    assert cube.sizes == {"time": 5, "y": 8, "x": 10}
    rows, cols = np.mgrid[0:8, 0:10]
    months = pd.date_range(*PERIOD, freq="MS")
    for m, month in enumerate(months):
        expected = expected_value("TA", month, rows, cols)
        if m == 1:
            expected[2, 3] = np.nan  # masked on the server; TA is not gap-filled
        np.testing.assert_allclose(cube["TA"].values[m], expected, rtol=1e-6)
    # NDVI is optical: the masked month is interpolated from its neighbours, and flagged.
    january, march = (expected_value("NDVI", months[i], 2, 3) for i in (0, 2))
    assert float(cube["NDVI"].values[1, 2, 3]) == pytest.approx((january + march) / 2)
    assert float(cube["FILLED"].values[1, 2, 3]) == 1.0 and float(cube["FILLED"].sum()) == 1.0
    assert float(cube["NDVI_gap_fraction"].values[2, 3]) == pytest.approx(1 / 5)
    assert cube.attrs["source"] == "Google Earth Engine"
    assert "MODIS/061/MOD13A1" in cube.attrs["collections"]
    assert not (tmp_path / "cube.zarr.fetching").exists()


class Flaky:
    """A request failing ``failures`` times with ``message``, then returning 42."""

    def __init__(self, failures, message="Too Many Requests: Earth Engine quota exceeded."):
        self.failures, self.message, self.calls = failures, message, 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise ee.EEException(self.message)
        return 42


def test_quota_errors_are_retried_with_back_off(offline_ee):
    waits = []
    request = Flaky(3)
    assert call_with_retries(request, what="a tile", base_delay=1.0, sleep=waits.append) == 42
    assert request.calls == 4
    assert len(waits) == 3 and all(2**k <= w <= 1.5 * 2**k for k, w in enumerate(waits))
    with pytest.raises(
        FetchFailedError, match="kept refusing a tile after 2 retries .* run the same"
    ):
        call_with_retries(Flaky(9), what="a tile", retries=2, sleep=lambda seconds: None)


def test_other_errors_stop_at_once(offline_ee):
    request = Flaky(1, "Image.load: Asset not found.")
    with pytest.raises(FetchFailedError, match="refused a tile: Image.load: Asset not found"):
        call_with_retries(request, what="a tile", sleep=pytest.fail)
    assert request.calls == 1


def test_a_crashed_fetch_resumes_with_the_missing_blocks_only(offline_ee, tmp_path):
    crashing = FakeServer(fail_at={7})
    with pytest.raises(FetchFailedError, match="refused rows"):
        fetch(tmp_path, crashing)
    staging = tmp_path / "cube.zarr.fetching"
    assert len(list((staging / "blocks_done").iterdir())) == 6
    assert not (tmp_path / "cube.zarr").exists()  # nothing half-written under the final name
    resumed = FakeServer()
    fetch(tmp_path, resumed)
    assert resumed.calls == 18 - 6
    whole = tmp_path / "again"
    whole.mkdir()
    fetch(whole, FakeServer())
    a, b = open_store(tmp_path / "cube.zarr"), open_store(whole / "cube.zarr")
    for name in VARIABLES:
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_a_resume_with_other_settings_is_refused(offline_ee, tmp_path):
    with pytest.raises(FetchFailedError):
        fetch(tmp_path, FakeServer(fail_at={2}))
    with pytest.raises(FetchFailedError, match="unfinished fetch with other settings"):
        fetch_cube(
            GRID,
            ("2019-01", "2019-09"),
            tmp_path / "cube.zarr",
            variables=VARIABLES,
            tile=4,
            months_per_request=2,
            compute_pixels=FakeServer(),
        )


def test_export_tasks_target_the_grid(offline_ee):
    tasks = export_tasks(GRID, ("2019-01", "2019-02"), variables=VARIABLES, bucket="my-bucket")
    assert [t.config["description"] for t in tasks] == ["upscale_2019-01", "upscale_2019-02"]
    destination = tasks[0].config["fileExportOptions"]["cloudStorageDestination"]
    assert destination == {"bucket": "my-bucket", "filenamePrefix": "upscale_2019-01"}
    text = tasks[0].config["expression"].serialize()
    assert "EPSG:4326" in text and "-81.9" in text
    with pytest.raises(FetchFailedError, match="either a Cloud Storage bucket or a Drive folder"):
        export_tasks(GRID, PERIOD)


def test_failed_initialisation_never_shows_the_key(tmp_path, capsys):
    secret = "-----BEGIN PRIVATE KEY-----SECRET-TOKEN-1234"
    key = tmp_path / "key.json"
    key.write_text(
        json.dumps(
            {
                "type": "service_account",
                "private_key": secret,
                "client_email": "bot@p.iam.gserviceaccount.com",
            }
        )
    )
    with pytest.raises(FetchFailedError) as caught:
        initialize("my-project", service_account="bot@p.iam.gserviceaccount.com", key_file=key)
    message = str(caught.value)
    assert "earthengine authenticate" in message
    assert "SECRET" not in message and "PRIVATE KEY" not in message
    printed = capsys.readouterr()
    assert "SECRET" not in printed.out + printed.err


FETCH_COMMAND = [
    "fetch",
    "--project",
    "my-project",
    "-r",
    "-81.9,25.1,-81.4,25.5",  # GRID's bounds
    "--resolution",
    "0.05",
]


def test_fetch_command_without_credentials_is_one_clear_error(tmp_path):
    from typer.testing import CliRunner

    from upscale.cli import app

    result = CliRunner().invoke(
        app,
        [*FETCH_COMMAND, "--period", "2019-01:2019-03", "--out", str(tmp_path / "c.zarr")],
    )
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert text.startswith("error: Earth Engine could not be initialised for project 'my-project'")
    assert "Traceback" not in text and not (tmp_path / "c.zarr").exists()


def test_grids_without_an_epsg_code_go_as_wkt():
    modis = TargetGrid("+proj=sinu +R=6371007.181 +units=m", (0, 0, 4632, 4632), 463.3127)
    request = pixel_grid(modis, slice(0, 2), slice(0, 2))
    assert "crsCode" not in request and "Sinusoidal" in request["crsWkt"]
    assert pixel_grid(GRID, slice(0, 1), slice(0, 1))["crsCode"] == "EPSG:4326"


def test_exports_declare_nodata_and_check_their_inputs(offline_ee):
    (task,) = export_tasks(GRID, ("2019-01", "2019-01"), variables=VARIABLES, bucket="b")
    assert str(NODATA) in json.dumps(task.config["fileExportOptions"], default=str)
    with pytest.raises(FetchFailedError, match=r"no Earth Engine recipe for \['TEMP'\]"):
        export_tasks(GRID, PERIOD, variables=["NDVI", "TEMP"], bucket="b")
    with pytest.raises(FetchFailedError, match="holds no month \\(is it reversed\\?\\)"):
        export_tasks(GRID, ("2019-05", "2019-01"), variables=VARIABLES, bucket="b")


def test_credentials_never_reach_the_output_or_the_cube(offline_ee, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from upscale.cli import app

    secret = "-----BEGIN PRIVATE KEY-----SECRET-TOKEN-5678"
    key = tmp_path / "key.json"
    key.write_text(json.dumps({"type": "service_account", "private_key": secret}))
    used = {}

    def credentials(account, key_file):  # what the real one reads: the key file
        used["key"] = json.loads(open(key_file).read())["private_key"]
        return object()

    monkeypatch.setattr(ee, "ServiceAccountCredentials", credentials)
    monkeypatch.setattr(ee, "Initialize", lambda *args, **kwargs: None)
    monkeypatch.setattr(ee.data, "computePixels", FakeServer())
    out = tmp_path / "cube.zarr"
    result = CliRunner().invoke(
        app,
        [
            *FETCH_COMMAND,
            "--period",
            "2019-01:2019-05",
            "--variables",
            "NDVI,TA",
            "--service-account",
            "bot@p.iam.gserviceaccount.com",
            "--key-file",
            str(key),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert used["key"] == secret  # the key was read and used ...
    written = [path.read_bytes() for path in out.rglob("*") if path.is_file()]
    assert written and open_store(out).attrs["earthengine_project"] == "my-project"
    for text in [result.output.encode(), *written]:  # ... and is nowhere in what was left
        assert b"SECRET-TOKEN" not in text and b"PRIVATE KEY" not in text


TOWERS = pd.DataFrame(
    {"lat": [25.3629, 25.1377, 25.2201], "lon": [-81.0776, -80.9245, -81.5102]},
    index=pd.Index(["US-Skr", "US-Srs", "AA-Zz"], name="site_id"),  # not alphabetical
)
BAND = re.compile(r'"constantValue": "([A-Z_]+)_(\d{4}-\d{2})"')


def tower_value(variable, month, site):
    base = {"NDVI": 0.5, "TA": 20.0}[variable]
    return base + 0.01 * int(month[5:]) + 0.1 * list(TOWERS.index).index(site)


class FakeFeatures:
    """computeFeatures as PANDAS_DATAFRAME: a row per tower with a property per band."""

    def __init__(self, masked=(), null=(), transient=0):
        self.masked, self.null, self.transient = set(masked), set(null), transient
        self.expressions = []

    def __call__(self, params):
        assert params["fileFormat"] == "PANDAS_DATAFRAME"
        assert isinstance(params["expression"], ee.FeatureCollection)
        text = params["expression"].serialize()
        self.expressions.append(text)
        if self.transient:
            self.transient -= 1
            raise ee.EEException("Too Many Requests: Earth Engine quota exceeded.")
        bands = sorted(set(BAND.findall(text)))
        records = []
        for site in reversed(TOWERS.index):  # the server's order is not the towers'
            properties = {"site_id": site}
            for variable, month in bands:
                if (site, month, variable) in self.null:
                    continue  # a property the server leaves out
                masked = (site, month, variable) in self.masked
                value = NODATA if masked else tower_value(variable, month, site)
                properties[f"{variable}_{month}"] = value
            records.append({"geo": {"type": "Point"}, **properties})
        return pd.DataFrame.from_records(records)


def test_points_expression_samples_the_towers_at_each_drivers_scale(offline_ee):
    months = list(pd.date_range("2019-01-01", periods=2, freq="MS"))
    text = points_expression(TOWERS, ["NDVI", "TA"], months).serialize()
    for lat, lon in TOWERS[["lat", "lon"]].itertuples(index=False):
        assert str(lat) in text and str(lon) in text
    assert "Image.reduceRegions" in text and "Reducer.forEach" in text
    assert '"constantValue": 500.0' in text and '"constantValue": 11132.0' in text
    assert {b for b in BAND.findall(text)} == {
        (v, m) for v in ("NDVI", "TA") for m in ("2019-01", "2019-02")
    }
    one = points_expression(TOWERS, ["NDVI", "TA"], months, scale=1000).serialize()
    assert '"constantValue": 1000' in one and "11132" not in one


def test_drivers_at_the_towers_from_earth_engine(offline_ee):
    server = FakeFeatures(
        masked={("US-Srs", "2019-02", "NDVI")}, null={("AA-Zz", "2019-05", "TA")}, transient=1
    )
    waits = []
    table = fetch_points(
        TOWERS,
        PERIOD,
        variables=["TA", "NDVI"],
        months_per_request=2,
        compute_features=server,
        sleep=waits.append,
    )
    assert len(server.expressions) == 4 and len(waits) == 1  # 3 blocks, one retried
    assert list(table.columns) == ["site_id", "time", "TA", "NDVI"]
    months = pd.date_range(*PERIOD, freq="MS")
    assert list(table["site_id"]) == [s for s in TOWERS.index for _ in months]
    assert list(table["time"]) == list(months) * len(TOWERS)
    for row in table.itertuples():
        month = f"{row.time:%Y-%m}"
        for name in ("TA", "NDVI"):
            value = getattr(row, name)
            if (row.site_id, month, name) in server.masked | server.null:
                assert np.isnan(value)
            else:
                assert value == pytest.approx(tower_value(name, month, row.site_id), rel=1e-6)
    assert int(table[["TA", "NDVI"]].isna().sum().sum()) == 2


def test_fetch_with_sites_writes_the_table_extract_writes(offline_ee, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from upscale.cli import app
    from upscale.towers.sites import write_sites_table
    from upscale.towers.tidy import read_site_drivers

    write_sites_table(TOWERS.assign(ecosystem="mangrove"), tmp_path / "sites")
    monkeypatch.setattr(ee, "Initialize", lambda *args, **kwargs: None)
    monkeypatch.setattr(ee.data, "computeFeatures", FakeFeatures())
    out = tmp_path / "drivers.csv"
    command = ["fetch", "--project", "my-project", "--sites", str(tmp_path / "sites")]
    options = ["--period", "2019-01:2019-03", "--variables", "NDVI,TA", "--out", str(out)]
    result = CliRunner().invoke(app, [*command, *options])
    assert result.exit_code == 0, result.output
    assert "drivers" in result.output and "drivers.csv" in result.output
    lines = out.read_text().splitlines()
    assert lines[0] == "site_id,time,NDVI,TA" and lines[1].startswith("US-Skr,2019-01-01,")
    back = read_site_drivers(out)
    assert len(back) == 9
    skr = back[back["site_id"] == "US-Skr"].set_index("time")["TA"]
    assert skr.iloc[0] == pytest.approx(tower_value("TA", "2019-01", "US-Skr"), rel=1e-6)
    again = CliRunner().invoke(app, [*command, *options])
    assert again.exit_code == 2 and "pass --overwrite" in again.output
    region = ["-r", "-81.9,25.1,-81.4,25.5"]
    both = CliRunner().invoke(app, [*command, *region, *options, "--overwrite"])
    assert both.exit_code == 2 and "leave out --region" in " ".join(both.output.split())
    neither = CliRunner().invoke(app, ["fetch", "--project", "p", "--period", "2019-01:2019-02"])
    assert neither.exit_code == 2 and "or --sites" in " ".join(neither.output.split())
