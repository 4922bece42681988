"""Does the inspection page work in a real browser: upload a fixture image in headless
Chromium, get back a heatmap (an image the browser can show) and the defect probability
that the scorer computes for the same file?

Chromium is driven through the DevTools protocol (no selenium or playwright): it starts
with ``--remote-debugging-port=0`` and writes the port it chose to ``DevToolsActivePort``
in its profile folder; the test talks to the page's websocket with tornado.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import io
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.conftest import load_cnnkit

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = Path("/tmp/anomaly_app_screenshot.png")

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="no Chromium binary (/usr/bin/chromium) to drive the page"
)


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory) -> Path:
    mvtec = importlib.import_module(f"{load_cnnkit().__name__}.mvtec")
    root = tmp_path_factory.mktemp("mvtec")
    return mvtec.write_mvtec_fixture(root, train_good=20, test_good=3, test_defects=2)


@pytest.fixture(scope="module")
def scorer(fixture_dir):
    from solutions import anomaly_app

    mvtec = importlib.import_module(f"{load_cnnkit().__name__}.mvtec")
    images, _, _, _ = mvtec.as_tensors(mvtec.MVTecAD(fixture_dir, "train", 128))
    return anomaly_app.build_scorer(images)


@pytest.fixture(scope="module")
def server(scorer):
    from werkzeug.serving import make_server

    from solutions.anomaly_app import create_app

    httpd = make_server("127.0.0.1", 0, create_app(scorer))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/"
    finally:
        httpd.shutdown()
        thread.join(timeout=5)


def start_chromium(profile: Path) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--window-size=900,900",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    port_file = profile / "DevToolsActivePort"
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            return process, int(port_file.read_text().split()[0])
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("Chromium did not open its DevTools port")


class DevTools:
    """A minimal DevTools client on one page's websocket: commands and awaited events."""

    def __init__(self, connection) -> None:
        self.connection, self.next_id, self.events = connection, 0, []

    async def send(self, method: str, timeout: float = 15, **params):
        self.next_id += 1
        ident = self.next_id
        await self.connection.write_message(
            json.dumps({"id": ident, "method": method, "params": params})
        )
        while True:
            message = await asyncio.wait_for(self.connection.read_message(), timeout)
            if message is None:
                raise RuntimeError("DevTools connection closed")
            data = json.loads(message)
            if data.get("id") == ident:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                return data["result"]
            self.events.append(data)

    async def wait_event(self, method: str, timeout: float = 15):
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method:
                    self.events.remove(event)
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(method)
            message = await asyncio.wait_for(self.connection.read_message(), left)
            if message is None:
                raise RuntimeError("DevTools connection closed")
            self.events.append(json.loads(message))

    async def evaluate(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


async def drive(port: int, url: str, upload: Path) -> dict:
    from tornado.websocket import websocket_connect

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
        pages = [t for t in json.load(response) if t["type"] == "page"]
    connection = await websocket_connect(pages[0]["webSocketDebuggerUrl"], max_message_size=1 << 26)
    try:
        tools = DevTools(connection)
        await tools.send("Page.enable")
        await tools.send("Page.navigate", url=url)
        await tools.wait_event("Page.loadEventFired")
        root = (await tools.send("DOM.getDocument"))["root"]["nodeId"]
        node = (await tools.send("DOM.querySelector", nodeId=root, selector="#file"))["nodeId"]
        await tools.send("DOM.setFileInputFiles", nodeId=node, files=[str(upload)])
        await tools.evaluate("document.getElementById('submit').click()")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ready = await tools.evaluate(
                "(() => { const img = document.getElementById('heatmap');"
                " return img.complete && img.naturalWidth > 0"
                " && document.getElementById('probability').dataset.value !== undefined; })()"
            )
            if ready:
                break
            await asyncio.sleep(0.2)
        else:
            error = await tools.evaluate("document.getElementById('error').textContent")
            raise TimeoutError(f"no result on the page (error text: {error!r})")
        found = {
            "probability": await tools.evaluate(
                "Number(document.getElementById('probability').dataset.value)"
            ),
            "verdict": await tools.evaluate("document.getElementById('verdict').textContent"),
            "heatmap": await tools.evaluate("document.getElementById('heatmap').src"),
            "width": await tools.evaluate("document.getElementById('heatmap').naturalWidth"),
        }
        shot = await tools.send("Page.captureScreenshot", format="png")
        SCREENSHOT.write_bytes(base64.b64decode(shot["data"]))
        return found
    finally:
        connection.close()


def test_uploading_an_image_shows_its_heatmap_and_defect_probability(
    server, scorer, fixture_dir, tmp_path
):
    from solutions.anomaly_app import read_image

    upload = fixture_dir / "test" / "spot" / "000.png"
    _, _, expected = scorer(read_image(upload.read_bytes(), scorer.size))
    process, port = start_chromium(tmp_path / "profile")
    try:
        found = asyncio.run(asyncio.wait_for(drive(port, server, upload), 60))
    finally:
        process.kill()
        process.wait(timeout=10)
    assert 0.0 <= found["probability"] <= 1.0
    assert found["probability"] == pytest.approx(expected, abs=1e-6)
    assert found["verdict"].startswith("DEFECT" if expected >= 0.5 else "OK")
    assert found["heatmap"].startswith("data:image/png;base64,") and found["width"] > 100
    heatmap = Image.open(io.BytesIO(base64.b64decode(found["heatmap"].split(",", 1)[1])))
    assert heatmap.format == "PNG" and min(heatmap.size) > 100
    assert SCREENSHOT.stat().st_size > 1000


def test_the_endpoint_rejects_a_request_without_an_image(server):
    request = urllib.request.Request(server + "score", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=10)
    assert error.value.code == 400


def test_the_scorer_is_built_from_the_reference_functions(scorer):
    assert scorer.bank.shape == (15 * 16 * 16, 384) and scorer.spread > 0
    images = torch.rand(2, 3, 128, 128)
    assert scorer.maps(images).shape == (2, 16, 16)


def test_the_command_line_refuses_a_bank_too_small(capsys):
    from solutions.anomaly_app import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--images", "2"])
    assert exit_info.value.code == 2
    assert "--images must be at least 4" in capsys.readouterr().err


def test_only_areas_unlike_any_good_part_are_marked():
    """A map below the level of good parts comes back unmarked; an area above it is
    outlined in red (counted as pure red pixels: the title of a passing part is green)."""
    import numpy as np

    from solutions.anomaly_app import overlay_png

    def red_pixels(png: bytes) -> int:
        rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
        return int(((rgb[..., 0] > 200) & (rgb[..., 1] < 50) & (rgb[..., 2] < 50)).sum())

    image = torch.full((3, 64, 64), 0.5)
    calm = torch.full((64, 64), 0.9)
    spot = calm.clone()
    spot[20:40, 20:40] = 1.8
    assert red_pixels(overlay_png(image, calm, 0.2, level=1.0, vmax=2.0)) == 0
    assert red_pixels(overlay_png(image, spot, 0.2, level=1.0, vmax=2.0)) > 50
