"""The chat page's files over real HTTP (fast: stand-in engine). The page itself is driven in a
real browser against the real SmolLM2 in test_chat_page_browser.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.fake_server import KEY, make_server
from tests.support.fixtures_server import ServeProcess, ThreadedServer

from mlxk.server.ui import STATIC_DIR, page_url

ASSETS = {"/ui/chat.js": "text/javascript", "/ui/markdown.js": "text/javascript",
          "/ui/images.js": "text/javascript",
          "/ui/chat.css": "text/css"}


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    srv, _ = make_server()  # with an API key
    yield srv
    srv.stop()


@pytest.mark.parametrize("path", ["/", "/chat"])
def test_page_loads_without_the_key(server: ThreadedServer, path: str) -> None:
    r = httpx.get(server.base_url + path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "<title>mlx-knife chat</title>" in r.text
    assert "{{version}}" not in r.text and "/ui/chat.js?v=" in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"


def test_assets_load_without_the_key_and_the_api_still_needs_it(server: ThreadedServer) -> None:
    for path, ctype in ASSETS.items():
        r = httpx.get(server.base_url + path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith(ctype)
        assert r.content == (STATIC_DIR / path.rsplit("/", 1)[1]).read_bytes()
    head = httpx.head(server.base_url + "/ui/chat.js")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 1000
    assert httpx.get(server.base_url + "/v1/models").status_code == 401
    assert httpx.get(server.base_url + "/v1/models",
                     headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


@pytest.mark.parametrize("path", ["/ui/", "/ui/nope.js", "/ui/../app.py", "/ui/%2e%2e/ui.py",
                                  "/ui/.hidden", "/chat/x"])
def test_only_shipped_files_are_served(server: ThreadedServer, path: str) -> None:
    r = httpx.get(server.base_url + path)
    assert r.status_code == 401  # not ours: falls through to the API, which wants the key
    r = httpx.get(server.base_url + path, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code in (404, 405), (path, r.status_code)
    assert "error" in r.json()


def test_a_post_to_the_page_is_not_answered_by_it(server: ThreadedServer) -> None:
    r = httpx.post(server.base_url + "/", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code in (404, 405)
    assert "error" in r.json()


def test_no_ui_turns_the_page_off() -> None:
    srv, _ = make_server(api_key=None, ui=False)
    try:
        for path in ("/", "/chat", "/ui/chat.js"):
            r = httpx.get(srv.base_url + path)
            assert r.status_code == 404, path
            assert r.json()["error"]["code"] == "not_found"
    finally:
        srv.stop()


@pytest.mark.parametrize(("host", "url"), [("127.0.0.1", "http://127.0.0.1:8000/"),
                                          ("0.0.0.0", "http://127.0.0.1:8000/"),
                                          ("::1", "http://[::1]:8000/"),
                                          ("localhost", "http://localhost:8000/")])
def test_page_url(host: str, url: str) -> None:
    assert page_url(host, 8000) == url


def test_no_ui_flag_reaches_the_settings_and_the_startup_line() -> None:
    from mlxk.cli import serve as serve_cmd
    from mlxk.cli.main import build_parser

    parser, _ = build_parser("serve")
    assert serve_cmd.build_settings(parser.parse_args(["serve"])).ui is True
    assert serve_cmd.build_settings(parser.parse_args(["serve", "--no-ui"])).ui is False
    line = serve_cmd._human({"host": "127.0.0.1", "port": 8000, "model": None,
                             "ui": "http://127.0.0.1:8000/"})
    assert "listening on http://127.0.0.1:8000; chat page http://127.0.0.1:8000/ (Ctrl-C" in line
    assert "chat page" not in serve_cmd._human({"host": "127.0.0.1", "port": 8000, "ui": None})


def test_json_startup_line_names_the_page(serve_factory: Callable[..., ServeProcess],
                                          isolated_env: Path) -> None:
    import jsonschema

    schema = json.loads((STATIC_DIR.parents[1] / "schemas" / "serve.json").read_text())
    on = serve_factory(isolated_env)
    off = serve_factory(isolated_env, "--no-ui")
    for sp in (on, off):
        jsonschema.validate(sp.startup, schema)
    assert on.startup["data"]["ui"] == f"http://127.0.0.1:{on.port}/"
    assert httpx.get(on.base_url + "/").status_code == 200
    assert off.startup["data"]["ui"] is None
    assert httpx.get(off.base_url + "/").status_code == 404
