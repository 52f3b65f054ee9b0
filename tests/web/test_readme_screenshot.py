"""The README's picture of the playground is taken again on every browser test run (into
test-artifacts/web/) and must show the panels the page has: a panel added, removed or renamed
since docs/images/playground.png was taken fails here until it is taken again.

Pixels are not compared: fonts, antialiasing and the drawn strokes differ between machines and
Chromium versions, and a test that writes into docs/ would leave every run's checkout dirty."""

from tests.web import readme_screenshot
from tests.web.browser import ARTIFACTS

RETAKE = "take it again: .venv/bin/python -m tests.web.readme_screenshot (starts a server on models/)"


def test_the_readme_screenshot_shows_every_panel_of_the_page(browser, site):
    shot = readme_screenshot.take(browser, site)
    readme_screenshot.save(shot, ARTIFACTS / "playground.png")
    assert [panel_id for panel_id, _ in shot.panels][:2] == ["models", "classifier"]
    committed = readme_screenshot.panels_of(readme_screenshot.OUT)
    assert committed == shot.panels, f"docs/images/playground.png shows {committed}, the page has {shot.panels}: {RETAKE}"
