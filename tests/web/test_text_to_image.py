"""The Text to image panel in a real browser: a suggested prompt streams a sharpening picture, a
word the model does not know is shown in plain words, and Stop ends the server's sampling."""

import pytest

from tests.conftest import ROOT
from tests.tasks import builders
from tests.web.browser import PIXELS_JS, metric, screenshot

TRAINED = "digits-text2img"


@pytest.fixture(scope="module")
def site(tmp_path_factory, module_server) -> str:
    repo = tmp_path_factory.mktemp("text2img") / "models"
    repo.mkdir()
    if (ROOT / "models" / TRAINED).is_dir():
        (repo / TRAINED).symlink_to(ROOT / "models" / TRAINED, target_is_directory=True)
    graphs = {"text_encoder.onnx": builders.text_encoder(), "denoiser.onnx": builders.text_denoiser()}
    builders.write(repo, "tiny-text2img", builders.text_to_image_config(), graphs)
    # 4,000 steps of 64 samples: a stream is still running when the test presses Stop.
    builders.write(repo, "slow-text2img", builders.text_to_image_config(
        schedule={"betas": builders.betas(4000)}, default_steps=4000, max_steps=4000), graphs)
    return module_server(repo)


@pytest.fixture(scope="module")
def model(site) -> str:
    return TRAINED if (ROOT / "models" / TRAINED).is_dir() else "tiny-text2img"


def open_panel(page, url: str, query: str = ""):
    page.goto(f"{url}/{query}")
    page.wait_for_selector("body[data-ready]")
    return page.locator("#text2img")


def done(page) -> None:
    page.wait_for_function("() => document.querySelector('#text2img .status').textContent.startsWith('Done')")


def test_a_suggested_prompt_streams_a_sharpening_picture(page, site, model):
    panel = open_panel(page, site, "?t2i_seed=3")
    panel.locator("select[name=model]").select_option(model)
    page.evaluate("""() => {  // every picture the page replaces, in order
        window.frames_seen = [];
        new MutationObserver(records => records.forEach(r => frames_seen.push(r.oldValue)))
            .observe(document.querySelector('#text2img img.grid'),
                     {attributes: true, attributeFilter: ['src'], attributeOldValue: true});
    }""")
    suggestion = panel.locator(".suggestions button").first
    prompt = suggestion.inner_text()
    assert "thick" in panel.locator(".vocabulary").inner_text()
    suggestion.click()
    done(page)
    assert panel.get_by_label("Prompt", exact=True).input_value() == prompt
    status = panel.locator(".status").inner_text()
    assert f"samples of “{prompt}” (guidance" in status and "seed 3" in status
    frames = page.evaluate("frames_seen")[1:]  # the first replaced src was the empty one
    assert len(set(frames)) >= 3  # the picture changed as the steps arrived
    pixels = panel.locator("img.grid").evaluate(PIXELS_JS)
    assert pixels["bright"] > 0.02 * pixels["total"]
    assert "t2i_prompt=" in page.url  # the result can be shared by link
    screenshot(panel, "text2img")


def test_a_shared_link_restores_the_prompt_and_draws_it(page, site, model):
    panel = open_panel(page, site, f"?t2i={model}&t2i_prompt=a+thick+seven&t2i_n=4&t2i_seed=5&t2i_steps=10&t2i_guidance=2.5")
    done(page)
    assert panel.get_by_label("Prompt", exact=True).input_value() == "a thick seven"
    assert panel.locator(".status").inner_text() == "Done: 4 samples of “a thick seven” (guidance 2.5), 10 steps, seed 5."


def test_a_word_the_model_does_not_know_is_named(page, site, model):
    page.console.allow_http_error(400)
    panel = open_panel(page, site)
    panel.locator("select[name=model]").select_option(model)
    panel.get_by_label("Prompt", exact=True).fill("a purple seven")
    panel.get_by_role("button", name="Generate").click()
    error = panel.locator(".error")
    error.wait_for()
    assert error.inner_text().startswith("The server could not do that: word not in the vocabulary: 'purple'; the vocabulary is: ")


def test_stop_ends_the_servers_sampling(page, site):
    def executions():
        return metric(site, "modelserve_inference_exec_count_total", "slow-text2img")

    def cancelled():
        return metric(site, "modelserve_inference_request_failure_total", "slow-text2img", reason="cancelled")

    cancelled_before = cancelled()
    panel = open_panel(page, site, "?t2i=slow-text2img&t2i_prompt=a+thick+seven&t2i_n=64&t2i_steps=4000&t2i_seed=0")
    page.wait_for_function("() => Number(document.querySelector('#text2img img.grid').dataset.frames) >= 2")
    panel.get_by_role("button", name="Stop").click()
    page.wait_for_function("() => document.querySelector('#text2img .status').textContent.startsWith('Stopped')")
    for _ in range(500):  # the server notices the closed connection at its next await
        if cancelled() == cancelled_before + 1:
            break
        page.wait_for_timeout(20)
    assert cancelled() == cancelled_before + 1
    ran = executions()
    page.wait_for_timeout(300)
    assert executions() == ran < 4000 + 1  # no denoiser call ran after it
