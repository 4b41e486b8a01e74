"""Drive the app (:mod:`common.app`) in headless Chromium: start it, fill a tab, generate, fetch the served video,
take a screenshot. Used by the browser test (``common/tests/test_app_browser.py``) and by
``scripts/app_screenshot.py`` (``docs/app.png``).

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install chromium chromium-driver``; ``scripts/test.sh``
installs them) and ``selenium`` (the ``test`` extra).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(output_dir, port: int | None = None, timeout: float = 120, log_path=None, extra_env=None):
    """Start ``python -m common.app`` on 127.0.0.1:``port`` (a free one by default); yields its URL; stops it."""
    port = port or free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", **(extra_env or {}))
    for name in ("DYNAMICRAFTER", "SVD", "ANIMATEDIFF", "VIDEOCOMPOSER", "DROPLETVIDEO"):
        env.pop(f"VIDEOGEN_{name}_WEIGHTS", None)  # the tiny models, whatever this shell has set
    log = open(log_path or Path(output_dir) / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "common.app", "--port", str(port), "--output_dir", str(output_dir)],
                            cwd=str(REPO), env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        t0 = time.time()
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the app exited with status {proc.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() - t0 > timeout:
                raise TimeoutError(f"the app did not answer at {url} within {timeout:.0f} s; see {log.name}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def chromium_paths() -> tuple[str, str]:
    """(chromium binary, chromedriver) from PATH or Debian's locations; RuntimeError saying how to install them."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
    if not browser or not driver:
        raise RuntimeError("headless Chromium is needed: apt-get install chromium chromium-driver (scripts/test.sh "
                           "installs them)")
    return browser, driver


def browser(width: int = 1400, height: int = 1100):
    """A headless Chromium driven by selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = chromium_paths()
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              f"--window-size={width},{height}", "--mute-audio"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(driver), options=opts)


def _set_field(driver, elem_id: str, value) -> None:
    """Type ``value`` into the text / number input of the Gradio component ``#elem_id``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} textarea, #{elem_id} input")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(str(value))
    box.send_keys(Keys.TAB)  # blur: Gradio commits the value


def open_tab(driver, url: str, model: str, tab_title: str, fields: dict, timeout: float = 60):
    """Open ``url``, switch to the model's tab, fill ``fields`` (``{setting: value}``) and press Generate."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, timeout)
    tab = wait.until(EC.element_to_be_clickable(
        (By.XPATH, f"//button[@role='tab' and normalize-space()='{tab_title}']")))
    tab.click()
    wait.until(EC.visibility_of_element_located((By.ID, f"{model}-generate")))
    for name, value in fields.items():
        _set_field(driver, f"{model}-{name}", value)
    driver.find_element(By.ID, f"{model}-generate").click()


def error_message(driver, timeout: float = 30) -> str:
    """The text of the error the page shows (Gradio's toast) after a bad input."""
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(d):
        texts = d.execute_script("return Array.from(document.querySelectorAll('.toast-body'))"
                                 ".map(e => e.textContent.trim()).filter(t => t)")
        return " | ".join(texts) or False

    return WebDriverWait(driver, timeout).until(shown)


def generate_in_tab(driver, url: str, model: str, tab_title: str, fields: dict, timeout: float = 90,
                    progress: list | None = None) -> str:
    """:func:`open_tab`, then wait for the video element; returns the URL of the video it plays (RuntimeError
    with the page's message if it shows an error instead). ``progress``: a list that receives the progress
    texts the page shows meanwhile (e.g. ``"denoising - 50.0%"``)."""
    from selenium.webdriver.support.ui import WebDriverWait

    open_tab(driver, url, model, tab_title, fields, timeout)

    # one script call per poll: the page re-renders while it works, so element handles go stale between calls
    snapshot = """return {
        progress: Array.from(document.querySelectorAll('.progress-text, .meta-text')).map(e => e.textContent.trim()),
        src: Array.from(document.querySelectorAll(arguments[0])).map(v => v.getAttribute('src')).find(s => s) || null,
        errors: Array.from(document.querySelectorAll('.toast-body')).map(e => e.textContent.trim()).filter(t => t)};"""

    def video_src(d):
        page = d.execute_script(snapshot, f"#{model}-video video")
        if progress is not None:
            progress.extend(t for t in page["progress"] if t)
        if page["src"]:
            return page["src"]
        if page["errors"]:
            raise RuntimeError(f"the app reported an error: {' | '.join(page['errors'])}")
        return False

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(video_src)


def download(src: str, path) -> Path:
    """Fetch the file the page serves."""
    p = Path(path)
    with urllib.request.urlopen(src, timeout=30) as r:
        p.write_bytes(r.read())
    return p
