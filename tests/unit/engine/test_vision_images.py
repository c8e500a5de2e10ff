"""Image inputs (decode, data URIs, URL fetching) and the engine choice without the vision extra."""

from __future__ import annotations

import base64
import http.server
import io
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.tiny_vlm import write_png

from mlxk.engine.vision import images
from mlxk.errors import MlxkError, ValidationError


def png_bytes(tmp_path: Path) -> bytes:
    return write_png(tmp_path / "a.png").read_bytes()


def test_decode_gives_rgb_and_names_bad_input(tmp_path: Path) -> None:
    img = images.decode(png_bytes(tmp_path), "image 1")
    assert img.mode == "RGB" and img.size == (64, 48)
    with pytest.raises(ValidationError, match="image 1 is not an image PIL can read"):
        images.decode(b"GIF89a but not really" * 3, "image 1")
    with pytest.raises(ValidationError, match="could not be decoded"):
        images.decode(png_bytes(tmp_path)[:80], "image 1")  # truncated
    with pytest.raises(ValidationError, match="is empty"):
        images.decode(b"", "image 1")


def test_data_uris_and_base64(tmp_path: Path) -> None:
    b64 = base64.b64encode(png_bytes(tmp_path)).decode()
    assert images.from_data_uri(f"data:image/png;base64,{b64}", "x").size == (64, 48)
    assert images.from_base64(b64, "x").size == (64, 48)
    with pytest.raises(ValidationError, match="must be a base64 data URI"):
        images.from_data_uri(f"data:image/png,{b64}", "x")
    with pytest.raises(ValidationError, match="not valid base64"):
        images.from_base64("@@not base64@@", "x")


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        if self.path == "/slow.png":
            time.sleep(2)
        if self.path == "/missing.png":
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def image_host(tmp_path: Path) -> Iterator[str]:
    _Handler.body = png_bytes(tmp_path)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_server_image_urls_only_when_allowed(image_host: str) -> None:
    from mlxk.server import images as server_images

    def decode(url: str, allow: bool) -> dict:
        return server_images.decode_part(server_images.pending("url", url, "part"), allow_urls=allow)

    url = image_host + "/a.png"
    with pytest.raises(ValidationError, match="--allow-image-urls") as err:
        decode(url, False)
    assert err.value.extra.get("code") == "image_urls_disabled"
    part = decode(url, True)
    assert part["type"] == "image" and part["image"].size == (64, 48)
    with pytest.raises(ValidationError, match="gave HTTP 404"):
        decode(image_host + "/missing.png", True)
    with pytest.raises(ValidationError, match="data URI or an http"):
        decode("file:///etc/passwd", True)
    with pytest.raises(ValidationError, match="not valid base64"):  # base64 is never fetched
        server_images.decode_part(server_images.pending("base64", url, "part"), allow_urls=True)


def test_fetch_size_limit_and_timeout(image_host: str) -> None:
    with pytest.raises(ValidationError, match="larger than 100 bytes"):
        images.fetch(image_host + "/a.png", "part", timeout_s=5, max_bytes=100)
    with pytest.raises(ValidationError, match="cannot fetch"):
        images.fetch(image_host + "/slow.png", "part", timeout_s=0.3)


def test_without_the_extra_images_name_it(tiny_vlm_cached: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from mlxk.engine import choose
    from mlxk.engine.vision import require
    from mlxk.operations.run import read_images

    picture = write_png(tmp_path / "a.png")
    monkeypatch.setitem(sys.modules, "mlx_vlm", None)   # as if the extra were not installed
    with pytest.raises(MlxkError, match=r"pip install \"mlx-knife\[vision\]\""):
        require()
    assert choose.vision_available() is False
    with pytest.raises(ValidationError, match=r"images need the vision extra.*mlx-knife\[vision\]"):
        read_images(tiny_vlm_cached, [str(picture)])


def test_pil_image_round_trip_is_lossless_for_png(tmp_path: Path) -> None:
    """The server decodes exactly what mlx-vlm's own loader decodes for the same file."""
    from mlx_vlm.utils import load_image

    path = write_png(tmp_path / "b.png", size=(90, 70))
    ours = images.from_path(path)
    theirs = load_image(str(path))
    buf1, buf2 = io.BytesIO(), io.BytesIO()
    ours.save(buf1, format="PNG")
    theirs.save(buf2, format="PNG")
    assert buf1.getvalue() == buf2.getvalue()


def test_dialect_image_forms_become_pending_parts(tmp_path: Path) -> None:
    from mlxk.server import images as server_images

    b64 = base64.b64encode(png_bytes(tmp_path)).decode()
    forms = [
        server_images.anthropic_image({"type": "image", "source": {
            "type": "base64", "media_type": "image/png", "data": b64}}, "messages[0].content[0]"),
        server_images.responses_image({"type": "input_image",
                                       "image_url": f"data:image/png;base64,{b64}"}, "input[0]"),
        *server_images.ollama_images([b64], "messages[0].images"),
    ]
    for part in forms:
        img = server_images.decode_part(part, allow_urls=False)["image"]
        assert img.size == (64, 48)
    url_block = server_images.anthropic_image(
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}, "b")
    with pytest.raises(ValidationError, match="image URLs are disabled"):
        server_images.decode_part(url_block, allow_urls=False)
    with pytest.raises(ValidationError, match="source type 'file' is not supported"):
        server_images.anthropic_image({"type": "image", "source": {"type": "file"}}, "b")
    with pytest.raises(ValidationError, match="file_id images are not supported"):
        server_images.responses_image({"type": "input_image", "file_id": "file-1"}, "input[0]")
    with pytest.raises(ValidationError, match="must be a list of base64 strings"):
        server_images.ollama_images("abc", "messages[0].images")
    assert server_images.with_text([], "hi") == "hi"


def test_allow_image_urls_flag_reaches_the_server_settings() -> None:
    from mlxk.cli import serve as serve_cmd
    from mlxk.cli.main import build_parser
    from mlxk.server.settings import ServerSettings

    parser, _ = build_parser("serve")
    assert serve_cmd.build_settings(parser.parse_args(["serve"])).allow_image_urls is False
    on = serve_cmd.build_settings(parser.parse_args(["serve", "--allow-image-urls"]))
    assert on.allow_image_urls is True
    assert ServerSettings.from_json(on.to_json()).allow_image_urls is True  # survives the child hop
