"""Make docs/app.png: start the app (tiny random models), generate in the DynamiCrafter tab in headless Chromium and
take a screenshot of the page.

    python scripts/app_screenshot.py [--out docs/app.png] [--model dynamicrafter]

Needs chromium + chromedriver (bash scripts/setup_browser.sh) and selenium (the test extra).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import app_check
from common.videogen.run import get_spec

REPO = Path(__file__).resolve().parents[1]

FIELDS = {"dynamicrafter": {"prompt": "an astronaut floating in space, slowly turning"},
          "animatediff": {"prompt": "a corgi running on the beach, golden hour"}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(REPO / "docs" / "app.png"), help="the PNG to write (docs/app.png)")
    p.add_argument("--model", default="dynamicrafter", choices=sorted(FIELDS), help="the tab shown")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="app_screenshot_") as tmp, app_check.running_app(tmp) as url:
        driver = app_check.browser(1400, 1500)
        try:
            app_check.generate_in_tab(driver, url, args.model, get_spec(args.model).title, FIELDS[args.model])
            time.sleep(2)  # the video's first frames
            driver.execute_script("window.scrollTo(0, 0)")
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(args.out)
        finally:
            driver.quit()
    from PIL import Image

    with Image.open(args.out) as im:  # 256 colours: a third of the bytes, the page looks the same
        small = im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    small.save(args.out, optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
