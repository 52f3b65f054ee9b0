"""The page reads answers holding NaN and ±Infinity, which the server writes as Triton does and
which the browser's JSON.parse rejects on its own."""

import math

INFER = "/v2/models/diabetes-regressor/infer"
# A JSON request may hold the bare words too: one NaN feature makes the regressor answer NaN.
DATA = ", ".join(["NaN"] + ["0.01"] * 19)
BODY = '{"inputs": [{"name": "x", "shape": [2, 10], "datatype": "FP32", "data": [' + DATA + "]}]}"


def test_the_page_reads_non_finite_numbers_the_server_writes(page, site):
    page.goto(f"{site}/")
    page.wait_for_selector("body[data-ready]")
    answer = page.evaluate(
        """async ([path, body]) => {
          const api = await import("/web/api.js");
          const text = await (await fetch(path, { method: "POST", body })).text();
          const parsed = api.parseJSON(text);
          const mean = parsed.outputs.find((o) => o.name === "mean").data;
          const quoted = api.parseJSON('{"s": "NaN and -Infinity stay words", "x": [-Infinity, Infinity]}');
          return { text, first: String(mean[0]), second: mean[1], quoted };
        }""",
        [INFER, BODY],
    )
    assert "NaN" in answer["text"], "the server wrote no bare NaN: the test proves nothing"
    assert answer["first"] == "NaN"
    assert math.isfinite(answer["second"])
    assert answer["quoted"]["s"] == "NaN and -Infinity stay words"
    assert answer["quoted"]["x"] == [-math.inf, math.inf]
