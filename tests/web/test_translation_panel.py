"""The Translation panel in a real browser: French arriving token by token, the cross-attention
heat map, and Stop, against the committed en-fr-numbers model."""

import pytest

from tests.conftest import ROOT
from tests.web.browser import screenshot

MODEL = "en-fr-numbers"
pytestmark = pytest.mark.skipif(not (ROOT / "models" / MODEL).is_dir(), reason=f"models/{MODEL} is not trained")


def open_panel(page, url: str, query: str = ""):
    page.goto(f"{url}/{query}#translation")
    page.wait_for_selector("body[data-ready]")
    return page.locator("#translation")


def test_a_number_is_translated_token_by_token_with_its_attention(page, site):
    panel = open_panel(page, site)
    panel.get_by_label("English").fill("ninety-one thousand and eighty")
    panel.get_by_role("button", name="Translate").click()
    page.wait_for_function("() => document.querySelector('#translation').dataset.finish === 'stop'")
    assert panel.locator(".french").inner_text() == "quatre-vingt-onze mille quatre-vingts"
    header = panel.locator("table.attention tr").first.locator("th").all_inner_texts()
    assert header[1:] == ["ninety", "-", "one", "thousand", "and", "eighty"]
    rows = panel.locator("table.attention tr")
    assert rows.count() == 1 + 9  # a row per French token: quatre - vingt - onze mille quatre - vingts
    assert rows.nth(1).locator("th").inner_text() == "quatre"
    assert "9 tokens" in panel.locator(".status").inner_text()
    screenshot(panel, "translation")


def test_an_example_and_a_shared_link(page, site):
    panel = open_panel(page, site, "?text=eighty")
    panel.get_by_label("Or an example").select_option("ninety-one")
    page.wait_for_function("() => document.querySelector('#translation').dataset.finish === 'stop'")
    assert panel.locator(".french").inner_text() == "quatre-vingt-onze"
    assert "text=ninety-one" in page.url


def test_stop_closes_the_stream(page, site):
    panel = open_panel(page, site)
    # Stop in the same task as the submit: the stream has not finished, whatever the load.
    page.evaluate("""() => { const s = document.querySelector('#translation');
        s.querySelector('form').requestSubmit(); s.querySelector('.stop').click(); }""")
    page.wait_for_function("() => document.querySelector('#translation').dataset.finish === 'cancelled'")
    assert panel.locator(".status").inner_text().startswith("Stopped")
    assert panel.get_by_role("button", name="Translate").is_enabled()
    # That the server then runs no further step is tests/tasks/test_translation_batching.py's.


def test_words_outside_the_vocabulary_are_shown_in_plain_words(page, site):
    page.console.allow_http_error(400)
    panel = open_panel(page, site)
    panel.get_by_label("English").fill("twelve bananas")
    panel.get_by_role("button", name="Translate").click()
    error = panel.locator(".error")
    error.wait_for()
    assert "'bananas' not in the vocabulary" in error.inner_text()
