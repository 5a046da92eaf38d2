"""Every HTML output opened in headless Debian Chromium (Selenium, driver path given: nothing is
downloaded) with the network blocked: no SEVERE console message, no failed request, the expected
plots drawn, a non-blank screenshot, and the interactions a reader uses.

Set APT_VIZ_SCREENSHOTS to a folder to keep the screenshots (docs/advanced-visualization/).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugins.advanced_visualization.v1 import visualization_pb2 as pb
from apt_model.gen.apt.plugins.advanced_visualization.v1 import visualization_pb2_grpc
from apt_model.runtime.testing import serve_plugin, wait_job
from apt_model.store import Store

PLUGIN_DIR = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

pytestmark = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                                reason="needs Debian's chromium and chromium-driver")


@pytest.fixture(scope="module")
def pages(seeded_home, tmp_path_factory):
    """The three outputs, made by the real service: {view: html file}."""
    root = tmp_path_factory.mktemp("browser")
    home = root / "home"
    shutil.copytree(seeded_home, home)
    shutil.copy(seeded_home.parent / "viz-eval.txt", root / "eval.txt")
    with serve_plugin(PLUGIN_DIR, home, data_roots=(str(root),)) as (channel, _):
        stub = visualization_pb2_grpc.VisualizationStub(channel)
        jobs = [stub.StartDashboard(pb.DashboardRequest(models=["run-a", "run-b", "run-a-half"], output_name="dash")),
                stub.StartComparisonReport(pb.ComparisonReportRequest(
                    models=["run-a", "run-b"], eval_path=str(root / "eval.txt"), output_name="cmp",
                    bootstrap_samples=200, max_new_tokens=8)),
                stub.StartAttentionMap(pb.AttentionMapRequest(
                    name="run-a", text="Attention maps show tokens. 注意力图显示词。 Attention maps show tokens.",
                    output_name="att"))]
        for job in jobs:
            assert wait_job(channel, job.id, timeout=240).state == job_pb2.JOB_STATE_SUCCEEDED
    store = Store(home)
    return {"dashboard": store.dataset("dash").path / "dashboard.html",
            "report": store.dataset("cmp").path / "report.html",
            "attention": store.dataset("att").path / "attention.html"}


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1800",
                "--host-resolver-rules=MAP * ~NOTFOUND"):  # no name resolves: nothing can leave
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["http://*", "https://*", "ws://*", "wss://*"]})
    yield driver
    driver.quit()


def open_page(driver, path: Path, ready: str) -> float:
    """Load ``path``, wait until the JS expression ``ready`` is true; the seconds it took."""
    driver.get_log("browser"), driver.get_log("performance")  # drain what an earlier page left
    start = time.perf_counter()
    driver.get(path.as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(f"return !!({ready})"))
    return time.perf_counter() - start


def assert_clean(driver) -> None:
    severe = [m for m in driver.get_log("browser") if m["level"] == "SEVERE"]
    assert severe == [], severe
    events = [json.loads(m["message"])["message"] for m in driver.get_log("performance")]
    failed = [e["params"] for e in events if e["method"] == "Network.loadingFailed"]
    requests = [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]
    assert failed == [], failed
    assert all(u.startswith(("file:", "data:", "blob:")) for u in requests), requests


def assert_not_blank(driver, view: str) -> None:
    png = driver.get_screenshot_as_png()
    image = Image.open(io.BytesIO(png)).convert("RGB").resize((320, 450))
    inked = int((np.asarray(image, dtype=np.int32).sum(axis=2) < 720).sum())  # not white
    assert inked > 0.01 * 320 * 450, f"{view}: screenshot nearly blank ({inked} inked pixels)"
    if os.environ.get("APT_VIZ_SCREENSHOTS"):
        folder = Path(os.environ["APT_VIZ_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{view}.png").write_bytes(png)


def plots(driver) -> int:
    return driver.execute_script("return document.querySelectorAll('.js-plotly-plot').length")


def hover_text(driver, element_id: str) -> str:
    """Move the real mouse over a plot's drawing area until plotly shows a hover label."""
    area = driver.find_element(By.CSS_SELECTOR, f"#{element_id} .nsewdrag")
    width = area.size["width"]
    for fraction in (0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98):
        ActionChains(driver).move_to_element_with_offset(area, int(width * (fraction - 0.5)), 0).perform()
        time.sleep(0.1)
        texts = driver.find_elements(By.CSS_SELECTOR, f"#{element_id} .hoverlayer .hovertext")
        if texts:
            return texts[0].text
    return ""


def test_dashboard_renders_offline_and_reacts(browser, pages):
    open_page(browser, pages["dashboard"], "window.Plotly && document.querySelectorAll('.js-plotly-plot').length==5")
    assert plots(browser) == 5
    assert_clean(browser)
    assert_not_blank(browser, "dashboard")
    assert "run-" in hover_text(browser, "curves-step")  # the hovered curve's model and value
    browser.find_elements(By.CSS_SELECTOR, "#curves-step .legendtoggle")[0].click()
    WebDriverWait(browser, 5).until(  # plotly waits out a double-click first
        lambda d: d.execute_script("return document.getElementById('curves-step').data[0].visible") == "legendonly")
    # brush the learning_rate axis with the mouse around run-a's value (3e-3): run-b's curves hide
    drag_axis(browser, "learning_rate", start=0.125, by=-0.85)
    low, high = browser.execute_script(
        "return document.getElementById('settings').data[0].dimensions.find(d=>d.label=='learning_rate')"
        ".constraintrange")
    assert 1e-3 < low < 3e-3 <= high
    assert curves_visible(browser) == {"run-a"}
    assert browser.find_element(By.ID, "brushed").text == "1 of 2 models shown"
    assert_clean(browser)


def drag_axis(driver, label: str, start: float, by: float) -> None:
    """A real mouse drag along a parallel-coordinates axis: press at ``start`` (fraction of the
    axis height from its middle, down positive), move by ``by`` of its height in small steps, release."""
    k = driver.execute_script(
        f"return document.getElementById('settings').data[0].dimensions.findIndex(d=>d.label=={label!r})")
    axis = driver.find_elements(By.CSS_SELECTOR, "#settings .axis-brush rect.background")[k]
    height = axis.size["height"]
    ActionChains(driver).move_to_element_with_offset(axis, 0, int(height * start)).click_and_hold().perform()
    for _ in range(10):
        ActionChains(driver).move_by_offset(0, int(height * by / 10)).perform()
    ActionChains(driver).release().perform()


def curves_visible(driver) -> set[str]:
    """The models whose curves show on every curve plot (asserting the plots agree)."""
    shown = [{t["meta"] for t in driver.execute_script(f"return document.getElementById('{pid}').data")
              if t.get("visible", True) is True} for pid in ("curves-step", "curves-tokens", "curves-wall")]
    assert shown[0] == shown[1] == shown[2], shown
    return shown[0]


def filter_row(driver, key: str):
    return next(r for r in driver.find_elements(By.CSS_SELECTOR, "#filters tr[data-filter]")
                if r.find_elements(By.TAG_NAME, "td")[0].text == key)


def settings_runs(driver) -> int:
    """How many runs the parallel coordinates draw."""
    return driver.execute_script("return document.getElementById('settings').data[0].dimensions[0].values.length")


def test_dashboard_filters_hide_the_excluded_runs(browser, pages):
    open_page(browser, pages["dashboard"], "window.Plotly && document.querySelectorAll('.js-plotly-plot').length==5")
    assert browser.find_element(By.ID, "filtered").text == "2 of 2 runs pass the filters"
    keys = [r.find_elements(By.TAG_NAME, "td")[0].text
            for r in browser.find_elements(By.CSS_SELECTOR, "#filters tr[data-filter]")]
    assert keys == ["learning_rate", "tokenizer_from", "last loss", "lowest loss", "last val_loss"]
    # a setting's range: learning_rate at least 2e-3 keeps run-a (3e-3), drops run-b (1e-3)
    filter_row(browser, "learning_rate").find_element(By.CSS_SELECTOR, "input.lo").send_keys("0.002")
    assert curves_visible(browser) == {"run-a"} and settings_runs(browser) == 1
    assert browser.find_element(By.ID, "filtered").text == "1 of 2 runs pass the filters"
    filter_row(browser, "learning_rate").find_element(By.CSS_SELECTOR, "input.lo").clear()
    assert curves_visible(browser) == {"run-a", "run-b"} and settings_runs(browser) == 2
    # a setting's values: untick run-b's tokenizer_from ("run-a"); run-a's is unset
    boxes = filter_row(browser, "tokenizer_from").find_elements(By.CSS_SELECTOR, "input.opt")
    assert [b.get_attribute("value") for b in boxes] == ["(unset)", "run-a"]
    boxes[1].click()
    assert curves_visible(browser) == {"run-a"} and settings_runs(browser) == 1
    boxes[1].click()
    # a final metric's range: at most the lower of the two last losses keeps only that run
    last = browser.execute_script("return RUNS.filters.find(f=>f.key=='last loss').values")
    best = ["run-a", "run-b"][last.index(min(last))]
    filter_row(browser, "last loss").find_element(By.CSS_SELECTOR, "input.hi").send_keys(repr(min(last)))
    assert curves_visible(browser) == {best} and settings_runs(browser) == 1
    browser.execute_script("document.getElementById('filters').scrollIntoView()")
    assert_not_blank(browser, "dashboard-filters")
    assert_clean(browser)


def test_comparison_report_renders_offline_and_reacts(browser, pages):
    open_page(browser, pages["report"], "window.Plotly && document.querySelectorAll('.js-plotly-plot').length==2")
    assert plots(browser) == 2
    assert_clean(browser)
    assert_not_blank(browser, "report")
    assert "run-" in hover_text(browser, "per-language")
    token = browser.find_elements(By.CSS_SELECTOR, "span.tok")[3]
    assert token.get_attribute("title").endswith(" nats")
    assert_clean(browser)


def test_attention_map_renders_offline_and_reacts(browser, pages):
    open_page(browser, pages["attention"], "document.querySelectorAll('canvas.thumb').length==8")
    assert_clean(browser)
    assert_not_blank(browser, "attention")
    browser.find_elements(By.CSS_SELECTOR, "canvas.thumb")[5].click()
    assert browser.find_element(By.ID, "selected").text == "layer 1, head 1"
    big = browser.find_element(By.ID, "big")
    ActionChains(browser).move_to_element_with_offset(big, 0, 100).perform()
    assert browser.find_element(By.ID, "hover").text.startswith("query ")
    assert_clean(browser)
