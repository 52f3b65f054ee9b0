"""Debian's Chromium driven by Playwright for Python (never a downloaded browser), and the page
helpers the playground tests share."""

import shutil
from pathlib import Path

import httpx

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"


def why_no_browser() -> tuple[str, str] | None:
    """None when the browser tests can run; else the missing tool and where it comes from."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright", "pip install -e '.[dev]'"
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        return "chromium", f"Debian package chromium, at {CHROMIUM}"
    return None


class Console:
    """The page's console errors and uncaught exceptions, kept to assert there were none."""

    def __init__(self, page):
        self.errors: list[str] = []
        self.allowed: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def allow_http_error(self, status: int) -> None:
        """Chromium logs every non-2xx fetch; a test that provokes one says which."""
        self.allowed.append(f"the server responded with a status of {status}")

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in self.allowed)]


def draw(page, canvas_selector: str, strokes: list[list[tuple[float, float]]]) -> None:
    """Strokes as lists of points in fractions (0..1) of the canvas, drawn with the mouse."""
    canvas = page.locator(canvas_selector)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=4)
        page.mouse.up()


SEVEN = [[(0.2, 0.15), (0.8, 0.15), (0.4, 0.9)]]
ONE = [[(0.5, 0.1), (0.5, 0.9)]]

# Counts of bright (>200) and dark (<50) pixels of an <img>, read back through a canvas.
PIXELS_JS = """img => {
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let bright = 0, dark = 0;
  for (let i = 0; i < d.length; i += 4) { if (d[i] > 200) bright++; else if (d[i] < 50) dark++; }
  return {bright, dark, total: d.length / 4};
}"""


def metric(url: str, name: str, model: str, **labels) -> float:
    wanted = {"model": model, **labels}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in wanted.items()):
            return float(line.split()[-1])
    return 0.0


def screenshot(locator, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    locator.screenshot(path=str(ARTIFACTS / f"{name}.png"))
