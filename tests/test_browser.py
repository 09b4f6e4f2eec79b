"""The explorer (notebook 08) in a real browser: JupyterLab on 127.0.0.1 over a smoke results folder, headless
Chromium driven by Selenium (Debian's chromium + chromium-driver, installed by `make test`; nothing downloads).

It runs all cells, checks that the widgets rendered (no "Error displaying widget"), moves the sigma slider and changes
the denoiser and the task, checks that the PSNR line and the image change within seconds, and saves a screenshot
to <results>/smoke/08_explorer_browser.png.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time

import pytest

from dmh.notebooks import NOTEBOOKS

pytestmark = pytest.mark.slow
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
WAIT = 60  # seconds: a first kernel start and widget render on a busy 2-core machine


def _need_browser() -> None:
    if CHROMIUM and CHROMEDRIVER:
        return
    msg = "Chromium and ChromeDriver are needed (Debian: apt-get install chromium chromium-driver; `make test` does)"
    if shutil.which("apt-get"):  # where make test can install them, their absence is a failure, not a skip
        pytest.fail(msg)
    pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, smoke):
    """JupyterLab serving a folder that holds notebook 08 (parameters: the smoke preset and the session's smoke
    results); yields (url, results folder); stops the server afterwards."""
    _need_browser()
    import papermill as pm

    root = tmp_path_factory.mktemp("browser")
    results = smoke.parent
    work = root / "lab"
    work.mkdir()
    pm.execute_notebook(str(NOTEBOOKS / "08_explorer.ipynb"), str(work / "08_explorer.ipynb"),
                        parameters={"preset": "smoke", "out_root": str(results)}, prepare_only=True)  # fmt: skip
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / "cfg"), "JUPYTER_RUNTIME_DIR": str(root / "rt")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}", "--ServerApp.open_browser=False",
           "--ServerApp.allow_root=True", "--LabApp.news_url=", "--LabApp.extension_manager=readonly",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]  # fmt: skip
    log = open(root / "lab.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + WAIT
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.terminate()
        pytest.fail(f"jupyter lab did not start: {(root / 'lab.log').read_text()[-2000:]}")
    yield f"{url}/lab/tree/08_explorer.ipynb?token={token}", results / "smoke"
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chrome'}",
        "--window-size=1400,1200",
    ):
        opts.add_argument(flag)  # fmt: skip
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


def _wait(driver, what, timeout: float = WAIT):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # Widgets re-render on every update: an element read a moment ago may be gone; look again.
    wait = WebDriverWait(driver, timeout, poll_frequency=0.25, ignored_exceptions=[StaleElementReferenceException])
    return wait.until(lambda d: what(d))


def _menu(driver, top: str, item: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f"//li[contains(@class,'lm-MenuBar-item')][.//div[text()='{top}']]").click()
    _wait(driver, lambda d: d.find_element(By.XPATH, f"//li[contains(@class,'lm-Menu-item')][.//div[text()='{item}']]"))
    driver.find_element(By.XPATH, f"//li[contains(@class,'lm-Menu-item')][.//div[text()='{item}']]").click()


def _accept_dialogs(driver, seconds: float = 8.0) -> None:
    """Accept JupyterLab's start-up dialogs (the kernel choice for a notebook opened the first time)."""
    from selenium.webdriver.common.by import By

    end = time.time() + seconds
    while time.time() < end:
        buttons = driver.find_elements(By.CSS_SELECTOR, ".jp-Dialog .jp-Dialog-button.jp-mod-accept")
        if buttons:
            buttons[0].click()
            time.sleep(0.5)
            continue
        if driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell") and time.time() > end - seconds / 2:
            return
        time.sleep(0.25)


def test_explorer_renders_and_reacts_in_a_real_browser(lab, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    url, results = lab
    browser.get(url)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"))
    _accept_dialogs(browser)
    _menu(browser, "Run", "Run All Cells")

    def psnr_text(d):
        found = d.find_elements(By.CSS_SELECTOR, ".dmh-psnr")
        return found[0].text if found and found[0].text else None

    first = _wait(browser, psnr_text)
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "Error displaying widget" not in page and "Error rendering" not in page
    image = lambda d: (d.find_elements(By.CSS_SELECTOR, ".widget-output img") or [None])[0]  # noqa: E731
    src0 = _wait(browser, image).get_attribute("src")

    # sigma: type into the slider's readout (what a user does to set an exact value)
    readout = browser.find_element(By.CSS_SELECTOR, ".widget-slider .widget-readout")
    old_sigma = readout.text
    readout.click()
    readout.send_keys(Keys.CONTROL, "a")
    readout.send_keys("90" if old_sigma != "90" else "30", Keys.ENTER)
    t0 = time.time()
    second = _wait(browser, lambda d: (t := psnr_text(d)) and t != first and t, timeout=15)
    assert "sigma 90" in second or "sigma 30" in second
    src1 = _wait(browser, lambda d: (s := image(d).get_attribute("src")) != src0 and s, timeout=15)
    sigma_seconds = time.time() - t0

    # the denoiser (lambda), the one compared with it, and the task dropdowns
    selects = browser.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")
    assert len(selects) == 4  # the explorer's lambda, vs and task, then the gallery of 07's zoom-ins (photo)
    lam = Select(selects[0])
    assert len(lam.options) >= 2
    lam_label = lam.options[1].text
    lam.select_by_index(1)
    third = _wait(browser, lambda d: (t := psnr_text(d)) and t != second and t, timeout=15)
    assert lam_label in third
    vs = Select(browser.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")[1])
    vs_label = vs.options[2].text
    vs.select_by_index(2)
    compared = _wait(browser, lambda d: (t := psnr_text(d)) and f"vs {vs_label}" in t and t, timeout=15)
    task = Select(browser.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")[2])
    task_label = task.options[1].text
    task.select_by_index(1)
    fourth = _wait(browser, lambda d: (t := psnr_text(d)) and t != compared and t, timeout=15)
    assert fourth.split(" #")[0] == task_label
    _wait(browser, lambda d: image(d).get_attribute("src") not in (src0, src1), timeout=15)

    # a live fine-tune: click the button, the new denoiser is added to the dropdown and shown (smoke size: seconds)
    n_before = len(Select(browser.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")[0]).options)
    button = next(b for b in browser.find_elements(By.CSS_SELECTOR, "button") if b.text.strip() == "fine-tune")
    button.click()
    _wait(browser, lambda d: len(Select(d.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")[0]).options)
          > n_before, timeout=120)  # fmt: skip
    tuned = _wait(browser, lambda d: (t := psnr_text(d)) and "lambda=0.01" in t and t, timeout=30)
    assert f"through {task_label}" in tuned

    # 07's texture zoom-ins: another photo, another picture
    gallery = Select(browser.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")[3])
    assert len(gallery.options) == 5  # the five TEST photos
    zoom = lambda d: d.find_element(By.CSS_SELECTOR, ".widget-image").get_attribute("src")  # noqa: E731
    z0 = _wait(browser, zoom)
    gallery.select_by_index(1)
    _wait(browser, lambda d: (z := zoom(d)) != z0 and z, timeout=15)

    assert "vs " in tuned  # the comparison stays after the fine-tune
    browser.execute_script("arguments[0].scrollIntoView();", browser.find_element(By.CSS_SELECTOR, ".widget-slider"))
    shot = results / "08_explorer_browser.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    assert sigma_seconds < 15
