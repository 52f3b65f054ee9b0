"""The playground on a server that wants an API key: it says so, and works once given one."""

import pytest

from tests.conftest import ROOT

KEY = "playground-key-7"


@pytest.fixture(scope="module")
def keyed_site(tmp_path_factory, module_server) -> str:
    repo = tmp_path_factory.mktemp("keyed") / "models"
    repo.mkdir()
    for name in ("digits-cnn", "digits-gan"):
        (repo / name).symlink_to(ROOT / "models" / name, target_is_directory=True)
    return module_server(repo, env={"MODELSERVE_API_KEYS": KEY})


def test_the_page_asks_for_a_key_and_uses_it(page, keyed_site):
    page.console.allow_http_error(401)
    page.goto(f"{keyed_site}/")
    alert = page.locator("#models .error")
    alert.wait_for()
    assert "needs an API key" in alert.inner_text()

    page.fill("#api-key", KEY)
    page.click("form.api-key button")
    page.wait_for_selector("body[data-ready]")
    assert page.locator("#models article.model:has(h3:text-is('digits-cnn'))").count() == 1
    assert page.input_value("#api-key") == KEY
    assert KEY not in page.url  # a shared link never carries the key
