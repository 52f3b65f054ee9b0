"""docs/images/playground.png: the playground's panels in use, for the README (not a test).

    .venv/bin/python -m tests.web.readme_screenshot [--url http://127.0.0.1:8000]

Needs a server on models/ (make serve) and Debian's chromium.
"""

import argparse
import io
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from tests.web.browser import ARGS, CHROMIUM, ONE, SEVEN, draw

OUT = Path(__file__).resolve().parents[2] / "docs" / "images" / "playground.png"
THREE = [[(0.25, 0.15), (0.75, 0.15), (0.5, 0.48), (0.78, 0.7), (0.5, 0.9), (0.22, 0.85)]]
WIDTH = 1200  # of the picture: two panels side by side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    url = parser.parse_args().url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 720, "height": 900}, device_scale_factor=1)
        page.goto(f"{url}/?gen=digits-gan&n=16&seed=11&flow=moons-flow&dseed=5")
        page.wait_for_selector("body[data-ready]")
        draw(page, "#classifier canvas", THREE)
        draw(page, "#vae canvas.from", ONE)
        draw(page, "#vae canvas.to", SEVEN)
        page.wait_for_function("() => document.querySelectorAll('#vae .strip img').length === 8")
        page.wait_for_function("() => document.querySelector('#density .status').textContent.includes('grid')")
        page.locator("#density canvas").click(position={"x": 200, "y": 150})
        page.wait_for_function("() => document.querySelector('#density .readout').textContent.includes('nats')")
        shots = [Image.open(io.BytesIO(page.locator(s).screenshot())) for s in
                 ("#classifier", "#generators", "#density", "#vae")]
        header = Image.open(io.BytesIO(page.locator("header").screenshot()))
        browser.close()
    column = max(s.width for s in shots)
    rows = [max(shots[0].height, shots[1].height), max(shots[2].height, shots[3].height)]
    sheet = Image.new("RGB", (2 * column + 30, header.height + sum(rows) + 30), "#f6f7f9")
    sheet.paste(header, (10, 0))
    for i, shot in enumerate(shots):
        sheet.paste(shot, (10 + (i % 2) * (column + 10), header.height + 10 + (i // 2) * (rows[0] + 10)))
    sheet = sheet.resize((WIDTH, round(sheet.height * WIDTH / sheet.width)), Image.Resampling.LANCZOS)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(OUT, optimize=True)  # small in git
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
