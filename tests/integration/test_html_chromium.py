"""The HTML report in real headless Chromium: it loads offline without errors, draws its charts,
shows the verdict, and does not run a script smuggled in through the target's command line.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memsleuth.reports.base import ReportOptions, write_report
from tests.report_factories import build_leak_report

pytestmark = [pytest.mark.chromium, pytest.mark.xdist_group("chromium")]

CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _require_chromium() -> str:
    binary = _chromium_binary()
    missing = []
    if binary is None:
        missing.append("chromium (Debian package chromium)")
    if not os.access(CHROMEDRIVER, os.X_OK):
        missing.append(f"{CHROMEDRIVER} (Debian package chromium-driver)")
    if missing:
        reason = "headless Chromium test needs " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it")
        pytest.skip(reason)
    assert binary is not None
    return binary


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Any]:
    binary = _require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1366,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: selenium-manager would otherwise try to download one.
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    drv = webdriver.Chrome(service=service, options=options)
    try:
        yield drv
    finally:
        drv.quit()


def test_report_opens_offline_with_charts_and_escaped_target_text(
    driver: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    report = build_leak_report(
        command=("python", "app.py", "--banner", "<script>alert(1)</script>"),
        culprit_name='module app, global CACHE["a&b"] <dict>',
    )
    page = tmp_path / "report.html"
    write_report("html", report, ReportOptions(title="leak in app.py"), page)
    driver.get(page.as_uri())

    severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert severe == [], f"console errors: {severe}"
    # Self-contained: the page fetched nothing besides itself (no CDN, fonts, images).
    resources = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert resources == []
    # The smuggled script neither ran nor became an element; it shows as text.
    assert driver.find_elements(By.TAG_NAME, "script") == []
    assert "<script>alert(1)</script>" in driver.find_element(By.CSS_SELECTOR, ".cmd").text
    names = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".cname")]
    assert names[0] == 'module app, global CACHE["a&b"] <dict>'

    badge = driver.find_element(By.CSS_SELECTOR, "#verdict .badge")
    assert badge.is_displayed()
    assert badge.text.strip().lower() == "leak"
    headline = driver.find_element(By.CSS_SELECTOR, "#verdict .headline")
    assert headline.is_displayed() and "+40.1 MiB/h" in headline.text

    chart = driver.find_element(By.CSS_SELECTOR, "#memory svg.chart")
    assert chart.size["width"] > 600 and chart.size["height"] > 150
    # RSS, PSS, USS and the dashed trend are drawn with real points inside the plot.
    lines = chart.find_elements(By.CSS_SELECTOR, "polyline.line")
    assert len(lines) == 4
    box = driver.execute_script(
        "return arguments[0].getBBox().width * arguments[0].getBBox().height", lines[0]
    )
    assert box > 1000
    labels = chart.text
    assert "warm-up ends" in labels and "MiB" in labels and "min" in labels
    assert len(driver.find_elements(By.CSS_SELECTOR, "#counts svg.chart")) == 2
    sparks = driver.find_elements(By.CSS_SELECTOR, "#culprits svg.spark")
    assert len(sparks) == 3 and all(s.size["width"] > 100 for s in sparks)

    ARTIFACTS.mkdir(exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1366, min(int(height) + 40, 6000))
    assert driver.save_screenshot(str(ARTIFACTS / "report.png"))
