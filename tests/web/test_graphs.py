"""The Graphs panel in a real browser: the karate club and a generated graph drawn once per graph
model, coloured by its predictions, and a clicked node's probabilities."""

import re

import pytest

from tests.conftest import ROOT
from tests.web.browser import screenshot

SERVED = ("graph-gcn", "graph-gcn-deep")


@pytest.fixture
def graphs_page(page, site):
    if not all((ROOT / "models" / name).is_dir() for name in SERVED):
        pytest.skip("graph-gcn and graph-gcn-deep are not in models/ (python -m training graph-gcn)")
    page.goto(f"{site}/?graph=karate")
    page.wait_for_selector("body[data-ready]")
    page.wait_for_function("() => document.querySelectorAll('#graphs figure.graph-view').length === 2")
    return page


def captions(page) -> dict[str, str]:
    figures = page.locator("#graphs figure.graph-view")
    return {figures.nth(i).get_attribute("data-model"): figures.nth(i).inner_text() for i in range(figures.count())}


def right(caption: str) -> int:
    return int(re.search(r"(\d+) of \d+ nodes right", caption).group(1))


def cosine(caption: str) -> float:
    return float(re.search(r"cosine similarity ([\d.]+)", caption).group(1))


def test_shallow_and_deep_side_by_side_on_the_karate_club(graphs_page):
    text = captions(graphs_page)
    assert set(text) == set(SERVED)
    assert all("of 34 nodes right" in t for t in text.values())
    assert right(text["graph-gcn"]) > right(text["graph-gcn-deep"])
    assert cosine(text["graph-gcn-deep"]) > 0.99 > cosine(text["graph-gcn"])
    assert "34 nodes, 78 edges" in graphs_page.locator("#graphs .status").inner_text()
    # Every node is painted: the drawing is not blank and differs between the two models.
    pixels = graphs_page.evaluate("""() => [...document.querySelectorAll('#graphs canvas')].map(c =>
        c.getContext('2d').getImageData(0, 0, c.width, c.height).data.join(','))""")
    assert len(set(pixels)) == 2


def test_a_clicked_node_shows_its_probabilities_under_each_model(graphs_page):
    # The drawing is deterministic: the page's own layout function says where node 0 is.
    x, y = graphs_page.evaluate("""async () => {
        const { forceLayout } = await import('/web/graphs.js');
        const card = await (await fetch('/v2/models/graph-gcn/card')).json();
        const g = card.card.graphs.karate;
        return forceLayout(g.nodes.length, g.edges)[0];
    }""")
    canvas = graphs_page.locator("#graphs figure[data-model='graph-gcn'] canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    canvas.click(position={"x": x * box["width"] / 360, "y": y * box["height"] / 360})
    readout = graphs_page.locator("#graphs .readout")
    readout.get_by_text("Node 0").wait_for()
    lines = readout.inner_text().splitlines()
    assert lines[0].startswith("Node 0 (true: community 0)")
    for name, line in zip(SERVED, lines[1:], strict=True):
        assert line.startswith(f"{name}: community ")
        shares = [float(p) for p in re.findall(r"([\d.]+)%", line)]
        assert len(shares) == 5 and sum(shares) == pytest.approx(100, abs=0.3)
    screenshot(graphs_page.locator("#graphs"), "graphs")


def test_keys_walk_the_nodes_and_the_generated_graph_is_there_too(graphs_page):
    canvas = graphs_page.locator("#graphs figure[data-model='graph-gcn-deep'] canvas")
    canvas.focus()
    canvas.press("ArrowRight")
    canvas.press("ArrowRight")
    graphs_page.locator("#graphs .readout").get_by_text("Node 1").wait_for()
    graphs_page.select_option("#graphs select[name=graph]", "generated")
    graphs_page.wait_for_function("() => document.querySelector('#graphs .status').textContent.startsWith('51 nodes')")
    assert "graph=generated" in graphs_page.url
    assert all("of 51 nodes right" in t for t in captions(graphs_page).values())
