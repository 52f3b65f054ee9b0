"""One service and one Chromium for the playground tests: the committed models/ (linked into a
tmp repository, so nothing is written into the checkout) plus tiny diffusion models built there."""

from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, skip_for_missing_tool
from tests.tasks import builders
from tests.web.browser import ARGS, CHROMIUM, Console, why_no_browser

REAL_DIFFUSION = "digits-diffusion"


# The site is started once per pytest worker, not once per file: the pages only read its models.
@pytest.fixture(scope="session")
def site(tmp_path_factory, session_server) -> str:
    repo = tmp_path_factory.mktemp("playground") / "models"
    repo.mkdir()
    for model in sorted((ROOT / "models").iterdir()):
        if model.is_dir():
            (repo / model.name).symlink_to(model, target_is_directory=True)
    # Stopping is tested on a 4,000-step model: a stream of it is always still running when
    # the test presses Stop. The tiny one stands in for digits-diffusion until that lands.
    builders.slow_diffusion(repo)
    builders.write(repo, "tiny-diffusion", {
        "task": "diffusion", "data": builders.digits_data(), "labels": builders.LABELS, "null_label": 10,
        "schedule": {"betas": builders.betas(100)}, "default_steps": 50, "max_steps": 100,
    }, {"denoiser.onnx": builders.denoiser()})
    return session_server(repo)


@pytest.fixture(scope="session")
def diffusion_model(site) -> str:
    """digits-diffusion once it is in models/ and loads; the tiny stand-in before."""
    ready = {row["name"] for row in httpx.post(f"{site}/v2/repository/index", json={"ready": True}).json()}
    return REAL_DIFFUSION if REAL_DIFFUSION in ready else "tiny-diffusion"


# One Chromium per file, not per worker: Playwright's sync API keeps an asyncio loop running while
# it is open, and the asyncio.run() of the next test files on the worker would fail.
@pytest.fixture(scope="module")
def browser():
    missing = why_no_browser()
    if missing:
        skip_for_missing_tool(*missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        executable = CHROMIUM if Path(CHROMIUM).exists() else "chromium"
        chromium = playwright.chromium.launch(executable_path=executable, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page; the test fails if its JavaScript logged an error or threw."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    tab = context.new_page()
    tab.console = Console(tab)
    yield tab
    context.close()
    assert tab.console.unexpected() == [], "console errors on the page"
