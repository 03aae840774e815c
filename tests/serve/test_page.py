"""The web page in a real headless Chromium: upload, ratios, previews, downloads, errors that clear old results.

Skips without selenium or a Chromium + chromedriver (Debian: ``apt-get install chromium chromium-driver``).
Set ``OPENCROP_SCREENSHOTS=docs/img`` to write the screenshots used in docs/service.md (else a temp folder).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from serve_helpers import httpx

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (dev extra) drives the browser")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
DRIVER = shutil.which("chromedriver")
_NO_BROWSER = "no Chromium + chromedriver installed (apt-get install chromium chromium-driver)"
if not (CHROMIUM and DRIVER) and os.environ.get("OPENCROP_REQUIRE_BROWSER") == "1":  # CI: a skip would hide it
    raise RuntimeError(f"OPENCROP_REQUIRE_BROWSER=1 but {_NO_BROWSER}")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason=_NO_BROWSER)
PHOTO = Path(__file__).resolve().parents[2] / "examples" / "astronaut.jpg"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1300",
              "--force-device-scale-factor=1"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=opts)
    drv.set_script_timeout(30)
    yield drv
    drv.quit()


def _shot(drv: object, name: str, tmp_path: Path) -> Path:
    """Full-page screenshot, palette-reduced PNG (small enough for the docs)."""
    folder = Path(os.environ.get("OPENCROP_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    raw = tmp_path / f"{name}.raw.png"
    drv.save_screenshot(str(raw))  # type: ignore[attr-defined]
    out = folder / f"{name}.png"
    Image.open(raw).convert("RGB").quantize(256, dither=Image.Dither.NONE).save(out, optimize=True)
    return out


def _chip(drv, ratio: str):
    return drv.find_element(By.CSS_SELECTOR, f'#ratios .chip[data-ratio="{ratio}"]')


def test_upload_preview_download_and_error(browser, main_url: str, tmp_path: Path) -> None:
    drv = browser
    wait = WebDriverWait(drv, 40)
    drv.get(main_url + "/")
    assert drv.title == "opencrop"
    drv.execute_script("window.__sawBusy = false; new MutationObserver(() => { if (document.body.classList"
                       ".contains('busy')) window.__sawBusy = true; }).observe(document.body, {attributes: true});")
    assert drv.find_element(By.ID, "go").get_attribute("disabled") is not None  # nothing chosen yet

    drv.find_element(By.ID, "file").send_keys(str(PHOTO))
    wait.until(lambda d: d.execute_script("return document.getElementById('photo').naturalWidth") == 512)
    _chip(drv, "9:16").click()  # off
    _chip(drv, "4:5").click()  # on
    drv.find_element(By.ID, "custom-ratio").send_keys("banana")
    drv.find_element(By.ID, "add-ratio").click()
    assert "not a ratio" in drv.find_element(By.ID, "ratio-error").text
    drv.find_element(By.ID, "custom-ratio").clear()  # (the bad text stays for the user to fix)
    drv.find_element(By.ID, "custom-ratio").send_keys("1.91:1")
    drv.find_element(By.ID, "add-ratio").click()
    ratios = ["16:9", "1:1", "4:5", "1.91:1"]
    assert [c.get_attribute("data-ratio") for c in drv.find_elements(By.CSS_SELECTOR, '.chip[aria-pressed="true"]')
            ] == ratios
    drv.find_element(By.ID, "go").click()

    def all_rendered(d) -> bool:
        return d.execute_script(
            "const c=[...document.querySelectorAll('.card')]; return c.length===4 && c.every(k => "
            "k.querySelector('.preview img') && k.querySelector('.preview img').naturalWidth > 0 && "
            "k.querySelector('a.download').href.startsWith('blob:'));") and "busy" not in d.find_element(
            By.TAG_NAME, "body").get_attribute("class")

    wait.until(all_rendered)
    assert drv.execute_script("return window.__sawBusy") is True  # the loading state was shown
    expect = httpx.post(f"{main_url}/crop?" + "&".join(f"ratio={r}" for r in ratios), content=PHOTO.read_bytes(),
                        timeout=60).json()["crops"]
    cards = drv.find_elements(By.CSS_SELECTOR, ".card")
    assert [c.find_element(By.CSS_SELECTOR, ".card-title").text for c in cards] == ratios
    for card, crop in zip(cards, expect, strict=True):
        x1, y1, x2, y2 = crop["box"]
        assert f"box {x1},{y1} → {x2},{y2}" in card.find_element(By.CSS_SELECTOR, ".card-meta").text
        size = drv.execute_script("const i=arguments[0].querySelector('.preview img'); return [i.naturalWidth, "
                                  "i.naturalHeight];", card)
        assert size == [x2 - x1, y2 - y1]
        link = card.find_element(By.CSS_SELECTOR, "a.download")
        name = crop["ratio"].replace(":", "x")
        assert link.get_attribute("download") == f"astronaut_{name}.jpg"
        head = drv.execute_async_script("const done = arguments[1]; fetch(arguments[0]).then(r => r.arrayBuffer())"
                                        ".then(b => done([...new Uint8Array(b.slice(0, 2))]), e => done(String(e)));",
                                        link.get_attribute("href"))
        assert head == [0xFF, 0xD8]  # a JPEG file
    assert len(drv.find_elements(By.CSS_SELECTOR, "#overlay rect.box")) == 4
    assert not drv.find_element(By.ID, "error").is_displayed()
    _shot(drv, "service-results", tmp_path)
    photo = drv.find_element(By.ID, "photo")  # a click sets the focus point, in pixels of the photo
    webdriver.ActionChains(drv).move_to_element_with_offset(photo, photo.size["width"] // 4, 0).click().perform()
    fx, fy = (int(v) for v in re.fullmatch(r"x (\d+), y (\d+) \(pixels of the photo\)",
                                           drv.find_element(By.ID, "focus-text").text).groups())
    assert abs(fx - 384) <= 2 and abs(fy - 256) <= 2  # (the click lands on a whole screen pixel)
    assert len(drv.find_elements(By.CSS_SELECTOR, "#overlay circle")) == 1
    drv.find_element(By.ID, "clear-focus").click()
    assert drv.find_element(By.ID, "focus-text").text == "none"

    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(PHOTO.read_bytes()[:1500])
    drv.find_element(By.ID, "file").send_keys(str(corrupt))
    drv.find_element(By.ID, "go").click()
    wait.until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "cannot read the image" in drv.find_element(By.ID, "error-text").text
    assert drv.find_elements(By.CSS_SELECTOR, ".card") == []
    assert drv.find_elements(By.CSS_SELECTOR, "#overlay rect.box") == []
    assert not drv.find_element(By.ID, "original").is_displayed()  # no blank preview of an unreadable file
    assert drv.find_element(By.ID, "go").get_attribute("disabled") is None  # ready to try again
    _shot(drv, "service-error", tmp_path)

    drv.find_element(By.ID, "file").send_keys(str(PHOTO))  # a good photo again: the error goes
    assert not drv.find_element(By.ID, "error").is_displayed()
    drv.find_element(By.ID, "go").click()
    wait.until(all_rendered)
    assert not drv.find_element(By.ID, "error").is_displayed()
