"""/docs and /redoc in a browser that cannot reach the internet: both list the operations,
from scripts the service serves itself (they used to come from a CDN, and the pages were blank)."""

from urllib.parse import urlsplit

import httpx

OPERATIONS = ["/v2/models/{name}/infer", "/v1/models/{name}:predict", "/v2/models/{name}/generate"]


def offline(page) -> list[str]:
    """Abort every request that is not to 127.0.0.1; returns the list of those aborted."""
    aborted: list[str] = []

    def route(route):
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            aborted.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", route)
    return aborted


def test_swagger_ui_lists_the_operations_offline(page, site):
    aborted = offline(page)
    page.goto(f"{site}/docs")
    page.locator(".opblock").first.wait_for()
    paths = page.locator(".opblock .opblock-summary-path").all_inner_texts()
    for operation in OPERATIONS:
        assert any(operation in p.replace("\u200b", "") for p in paths), (operation, paths[:10])
    assert page.locator(".opblock").count() == sum(
        len(ops) for ops in httpx.get(f"{site}/openapi.json").json()["paths"].values())
    assert aborted == []  # nothing was even tried outside


def test_redoc_lists_the_operations_offline(page, site):
    aborted = offline(page)
    page.console.allowed.append("net::ERR_INTERNET_DISCONNECTED")  # the logo below
    page.goto(f"{site}/redoc")
    for operation in OPERATIONS:
        page.get_by_text(operation).first.wait_for()
    # ReDoc's "API docs by Redocly" menu link shows their logo from their CDN: without it, a
    # broken image in a corner. Nothing else may be fetched from outside.
    assert set(aborted) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}


def test_the_pages_and_their_assets_need_no_api_key(serve_repository, tmp_path):
    url = serve_repository(tmp_path, env={"MODELSERVE_API_KEYS": "secret"})
    assert httpx.get(f"{url}/docs").status_code == 200 and httpx.get(f"{url}/redoc").status_code == 200
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        answer = httpx.get(f"{url}/web/docs/{name}")
        assert answer.status_code == 200 and len(answer.content) > 100_000, name
    assert httpx.get(f"{url}/web/docs/..%2Fweb.py").status_code == 404
    assert httpx.get(f"{url}/v2/models/x").status_code == 401  # the key still guards the rest
