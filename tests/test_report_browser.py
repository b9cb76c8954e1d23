"""The demo's report opened in a real browser: headless Chromium, driven by selenium.

Checks what a reader would see: a page that is not blank, every image loaded, the
interactive map drawn with its overlay, regions and towers, and a console without errors
(a fetch that fails offline is one). Skips, saying why, where Chromium, its driver or
selenium is missing; ``.ci/run`` installs Debian's ``chromium`` and ``chromium-driver``.
"""

import io
import shutil

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

SECTIONS = ("inputs", "towers", "skill", "sweep", "shap", "maps", "uncertainty", "budgets")
SECTIONS += ("webmap",)
WIDTH = 1280


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium from the system's packages; selenium never downloads one."""
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed: pip install 'upscale[test]'"
    )
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip(
            "headless Chromium is not installed: apt-get install chromium chromium-driver "
            "(.ci/run does this when it runs as root)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu"):
        options.add_argument(argument)  # --no-sandbox: CI runs as root
    options.add_argument(f"--window-size={WIDTH},1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # selenium-manager: no downloads, ever
        driver = webdriver.Chrome(
            service=webdriver.ChromeService(executable_path=driver_path), options=options
        )
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def opened(demo_run, browser):
    """The demo's report loaded, its images decoded and Leaflet drawn."""
    from selenium.webdriver.support.ui import WebDriverWait

    out, _ = demo_run
    browser.get((out / "report.html").as_uri())
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script(
            "return document.readyState === 'complete' && "
            "Array.from(document.images).every(i => i.complete)"
        )
    )
    return browser


def test_every_section_is_there(opened):
    ids = opened.execute_script(
        "return Array.from(document.querySelectorAll('section'), s => s.id)"
    )
    assert tuple(ids) == SECTIONS


def test_every_image_loads(opened):
    images = opened.execute_script(
        "return Array.from(document.images, i => [i.complete, i.naturalWidth, i.alt])"
    )
    assert len(images) >= 6
    broken = [alt for complete, width, alt in images if not (complete and width > 0)]
    assert not broken


def test_the_map_draws_its_overlay_regions_and_towers(opened, demo_run):
    from selenium.webdriver.common.by import By

    out, _ = demo_run
    opened.switch_to.frame(opened.find_element(By.CSS_SELECTOR, "iframe.webmap"))
    try:
        assert opened.find_elements(By.CSS_SELECTOR, ".leaflet-container")
        overlay = opened.execute_script(
            "return Array.from(document.querySelectorAll('img.leaflet-image-layer'), "
            "i => [i.complete, i.naturalWidth])"
        )
        assert overlay == [[True, overlay[0][1]]] and overlay[0][1] > 0
        shapes = opened.find_elements(By.CSS_SELECTOR, "path.leaflet-interactive")
        towers = len((out / "inputs" / "sites" / "sites.csv").read_text().splitlines()) - 1
        assert len(shapes) == towers + 3  # a circle per tower, an outline per demo region
    finally:
        opened.switch_to.default_content()


def test_the_page_is_not_blank_and_the_console_is_clean(opened, tmp_path):
    height = opened.execute_script("return document.documentElement.scrollHeight")
    opened.set_window_size(WIDTH, height + 300)  # the window's frame takes some of it
    shot = tmp_path / "report.png"
    assert opened.save_screenshot(str(shot))
    pixels = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("L"), dtype=float)
    assert pixels.shape[0] >= 3000  # the whole page: nine sections of figures and tables
    assert pixels.std() > 20  # not one flat colour
    assert (pixels < 200).mean() > 0.05  # ink on a good share of it
    severe = [entry for entry in opened.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe
