"""docs/images/playground.png: the playground's panels in use, for the README.

    .venv/bin/python -m tests.web.readme_screenshot [--url http://127.0.0.1:8000]

Without --url it starts a server on models/ itself. Needs Debian's chromium. The picture holds
every panel of the page (`main > section`, in page order; the models panel cut after its first
row of cards), and records their ids and headings in a PNG text chunk:
tests/web/test_readme_screenshot.py takes the same picture on every browser test run and fails
when the committed one shows other panels than the page has.
"""

import argparse
import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, PngImagePlugin

from tests.web.browser import ARGS, CHROMIUM, ONE, SEVEN, draw

OUT = Path(__file__).resolve().parents[2] / "docs" / "images" / "playground.png"
THREE = [[(0.25, 0.15), (0.75, 0.15), (0.5, 0.48), (0.78, 0.7), (0.5, 0.9), (0.22, 0.85)]]
WIDTH = 1200  # of the picture
NARROW = 600  # viewport: each panel a column of the picture, two of them as wide as main's 72rem
GAP = 10
PANELS_KEY = "modelserve-panels"
BACKGROUND = "#f6f7f9"


@dataclass
class Shot:
    image: Image.Image
    panels: list[list[str]]  # [id, heading] of each panel, in page order


def take(browser, url: str) -> Shot:
    """The page used as a newcomer would: a digit drawn, samples, a density, an interpolation."""
    context = browser.new_context(viewport={"width": NARROW, "height": 900}, device_scale_factor=1)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(f"{url}/?gen=digits-gan&n=16&seed=11&flow=moons-flow&dseed=5")
    page.wait_for_selector("body[data-ready]")
    page.locator("#models article.model").first.wait_for()  # then the cards' pictures, which move
    page.wait_for_function("() => [...document.querySelectorAll('#models img')].every(i => i.complete)")
    panels = page.eval_on_selector_all(
        "main > section", "s => s.map(e => [e.id, e.querySelector('h2')?.textContent.trim() ?? ''])")
    draw(page, "#classifier canvas", THREE)
    draw(page, "#vae canvas.from", ONE)
    draw(page, "#vae canvas.to", SEVEN)
    page.wait_for_function("() => document.querySelectorAll('#vae .strip img').length === 8")
    page.wait_for_function("() => document.querySelector('#density .status').textContent.includes('grid')")
    page.locator("#density canvas").click(position={"x": 200, "y": 150})
    page.wait_for_function("() => document.querySelector('#density .readout').textContent.includes('nats')")
    page.wait_for_function("() => document.querySelector('#regressor .prediction').textContent.includes('±')")
    others = [_png(page.locator(f"#{panel_id}").screenshot()) for panel_id, _ in panels if panel_id != "models"]
    header = _png(page.locator("header").screenshot())
    models = _first_row(page, 2 * max(p.width for p in others) + GAP)
    context.close()
    return Shot(_sheet(header, models, others), panels)


def _first_row(page, width: int) -> Image.Image:
    """The models panel `width` px wide, down to the bottom of its first row of cards."""
    margin = NARROW - page.locator("#models").bounding_box()["width"]
    page.set_viewport_size({"width": round(width + margin), "height": 900})
    page.locator("#models article.model").first.wait_for()
    page.wait_for_function("() => [...document.querySelectorAll('#models img')].every(i => i.complete)")
    clip = page.evaluate("""() => {
        const panel = document.querySelector('#models').getBoundingClientRect();
        const cards = [...document.querySelectorAll('#models article.model')].map(c => c.getBoundingClientRect());
        const bottom = Math.max(...cards.filter(c => c.top === cards[0].top).map(c => c.bottom));
        return {x: panel.left + scrollX, y: panel.top + scrollY, width: panel.width, height: bottom - panel.top + 4};
    }""")
    return _png(page.screenshot(clip=clip, full_page=True))


def _sheet(header: Image.Image, models: Image.Image, panels: list[Image.Image]) -> Image.Image:
    """Header, the models strip, then the other panels in two columns, each under the shorter."""
    gap = GAP
    column = max(p.width for p in panels)
    width = max(2 * column + 3 * gap, models.width + 2 * gap)
    heights, places = [0, 0], []
    for panel in panels:
        side = heights.index(min(heights))
        places.append((gap + side * (column + gap), heights[side]))
        heights[side] += panel.height + gap
    top = header.height + models.height + 2 * gap
    sheet = Image.new("RGB", (width, top + max(heights) + gap), BACKGROUND)
    sheet.paste(header, (gap, 0))
    sheet.paste(models, (gap, header.height + gap))
    for panel, (x, y) in zip(panels, places, strict=True):
        sheet.paste(panel, (x, top + y))
    return sheet.resize((WIDTH, round(sheet.height * WIDTH / sheet.width)), Image.Resampling.LANCZOS)


def _png(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def save(shot: Shot, path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text(PANELS_KEY, json.dumps(shot.panels))
    path.parent.mkdir(parents=True, exist_ok=True)
    small = shot.image.quantize(colors=128, method=Image.Quantize.MEDIANCUT)  # small in git
    small.save(path, optimize=True, pnginfo=info)


def panels_of(path: Path) -> list[list[str]] | None:
    """The panels a saved picture shows; None for a picture without the record."""
    with Image.open(path) as image:
        recorded = image.text.get(PANELS_KEY)
    return json.loads(recorded) if recorded else None


def main() -> None:
    from playwright.sync_api import sync_playwright

    from docs.tasks_doc import serve

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a server on models/ (default: start one)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(serve(OUT.parents[2] / "models"))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            shot = take(browser, url)
            browser.close()
    save(shot, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB): {', '.join(h for _, h in shot.panels)}")


if __name__ == "__main__":
    main()
