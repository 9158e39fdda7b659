"""The screening page: served at `/`, and used in a real headless Chromium against uvicorn.

The browser test needs Debian's `chromium` and `chromium-driver` and the `selenium` package; it
skips, saying why, when any of them is missing. Selenium is pointed at Debian's binaries, so it
never downloads a browser or driver of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from html.parser import HTMLParser

import pytest

from conftest import AS_OF, EXAMPLES

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


class _Labels(HTMLParser):
    """Collects form controls and the ids their labels point at."""

    def __init__(self):
        super().__init__()
        self.controls, self.labelled, self.scripts = [], set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("input", "textarea", "select"):
            self.controls.append(a.get("id"))
        if tag == "label" and a.get("for"):
            self.labelled.add(a["for"])
        if tag == "script":
            self.scripts.append(a.get("src"))


def test_page_is_served_and_every_control_is_labelled(http):
    r = http.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = _Labels()
    page.feed(r.text)
    assert page.controls and set(page.controls) <= page.labelled
    assert page.scripts == [None], "one inline script, nothing loaded from elsewhere"
    assert 'lang="en"' in r.text and "http://" not in r.text.replace("http://www.w3.org", "")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="elig-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1280,1600"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _screen(browser, base_url, text: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(base_url + "/")
    area = browser.find_element(By.ID, "patient")
    browser.execute_script("arguments[0].value = arguments[1];", area, text)  # typing 7 kB is slow
    browser.execute_script("document.getElementById('as-of').value = arguments[0];", AS_OF)
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 30).until(
        lambda b: b.find_elements(By.ID, "overview") or b.find_elements(By.CSS_SELECTOR, "#status .error"))
    return By


def test_page_screens_a_fhir_bundle_in_a_browser(browser, live_server, tmp_path):
    By = _screen(browser, live_server.base_url, (EXAMPLES / "aclf_hbv_stale_labs.fhir.json").read_text())
    rows = browser.find_elements(By.CSS_SELECTOR, "#overview tbody tr")
    verdicts = {r.find_element(By.TAG_NAME, "a").text: r.find_elements(By.TAG_NAME, "td")[0].text for r in rows}
    assert verdicts["NCT01844063"] == "? Possibly eligible" and verdicts["NCT05106972"] == "✗ Not eligible"
    assert verdicts["NCT06984497"] == "✓ Eligible"
    section = browser.find_element(By.ID, "trial-NCT01844063")
    headers = [th.text for th in section.find_elements(By.CSS_SELECTOR, "thead th")]
    assert headers == ["Criterion", "Type", "Status", "Explanation", "Missing data"]
    unknown = section.find_elements(By.CSS_SELECTOR, 'tr[data-status="unknown"]')
    assert unknown and "INR" in " ".join(r.text for r in unknown)
    assert "Unknown" in unknown[0].find_elements(By.TAG_NAME, "td")[1].text  # status in words, not colour only
    assert "decides" in browser.find_element(By.ID, "missing-heading").find_element(By.XPATH, "..").text
    assert "Screened patient" in browser.find_element(By.ID, "status").text
    if os.environ.get("ELIG_SCREENSHOT_DIR"):
        browser.save_screenshot(os.path.join(os.environ["ELIG_SCREENSHOT_DIR"], "screen-page.png"))


def test_page_shows_problems_with_their_pointers(browser, live_server):
    patient = json.loads((EXAMPLES / "aclf_hbv_missing_inr.json").read_text()) | {"birth_date": 1974}
    By = _screen(browser, live_server.base_url, json.dumps(patient))
    error = browser.find_element(By.CSS_SELECTOR, "#status .error").text
    assert "Invalid request" in error and "/patient/birth_date" in error
