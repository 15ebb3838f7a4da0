"""The Gradio Space (spaces/face-quality-demo) driven in headless Chromium, plus its offline pieces.

The browser test needs gradio + playwright (``pip install 'hf-fiqa[demo,space-test]'``) and a Chromium binary
(Debian: ``apt-get install chromium``; scripts/setup.sh tries it). It skips, saying which, when one is missing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "spaces" / "face-quality-demo"


def _chromium() -> str:
    for candidate in (os.environ.get("HF_FIQA_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
                      shutil.which("google-chrome")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.skip("no Chromium browser found (install it with `apt-get install chromium`, which scripts/setup.sh "
                "tries, or point HF_FIQA_CHROMIUM at one)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load_app(monkeypatch, weights):
    monkeypatch.setenv("HF_FIQA_DETECTOR_WEIGHTS", str(weights))
    monkeypatch.delenv("HF_FIQA_MODEL", raising=False)
    spec = importlib.util.spec_from_file_location("face_quality_space", SPACE / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vendored_pipeline_code_is_the_package_code():
    pairs = {"face_quality_pipeline.py": ROOT / "src" / "hf_fiqa" / "hub" / "face_quality_pipeline.py",
             "fiqa_io.py": ROOT / "src" / "hf_fiqa" / "io.py"}
    for name, source in pairs.items():
        assert (SPACE / "fiqa_remote" / name).read_bytes() == source.read_bytes(), (
            f"spaces/face-quality-demo/fiqa_remote/{name} is stale: copy {source.relative_to(ROOT)} over it")
    packages = [line.split("#")[0].strip() for line in (SPACE / "requirements.txt").read_text().splitlines()]
    packages = [p for p in packages if p]
    assert not any(p.startswith(("hf-fiqa", "hf_fiqa")) or p.endswith(".whl") for p in packages), packages
    assert any(p.startswith("transformers") for p in packages)


def test_fallback_scorer_without_model(shared, yunet_weights, monkeypatch, tmp_path):
    pytest.importorskip("gradio")
    app = _load_app(monkeypatch, yunet_weights)
    assert "No model configured" in app.analyzer.description
    image, gallery, table, status, files = app.analyse_photo(str(shared / "data" / "deepface-pairs" / "couple.jpg"))
    assert len(gallery) == 2 and len(table) == 2 and "2 face(s)" in status
    qualities = [row[1] for row in table]
    assert qualities == sorted(qualities, reverse=True) and all(0 <= q <= 100 for q in qualities)
    assert [Path(f).suffix for f in files] == [".csv", ".json"]
    # Absolute scale: a colour depends on the quality only.
    assert app.colour(80.0) == app.colour(80.0) and app.colour(10.0) != app.colour(90.0)
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a photo")
    assert "not a recognised image format" in app.analyse_photo(str(broken))[3]


@pytest.mark.slow
def test_space_in_headless_chromium(shared, yunet_weights, tiny_maniqa_dir, tmp_path):
    pytest.importorskip("gradio")
    sync_api = pytest.importorskip("playwright.sync_api")
    browser_path = _chromium()
    couple = shared / "data" / "deepface-pairs" / "couple.jpg"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    port = _free_port()
    env = {**os.environ, "HF_FIQA_MODEL": str(tiny_maniqa_dir), "HF_FIQA_DETECTOR_WEIGHTS": str(yunet_weights),
           "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1"}
    log = (tmp_path / "space.log").open("w")
    server = subprocess.Popen([sys.executable, str(SPACE / "app.py")], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    pytest.fail("the Space did not start:\n" + (tmp_path / "space.log").read_text()[-3000:])
                time.sleep(1)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=browser_path, headless=True, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(url)
            assert "tiny" in page.locator("#scorer-description").inner_text() or str(tiny_maniqa_dir) in page.content()
            page.locator("#photo-input input[type=file]").set_input_files(str(couple))
            sync_api.expect(page.locator("#status")).to_contain_text("2 face(s)", timeout=120_000)
            sync_api.expect(page.locator("#crops img")).to_have_count(2, timeout=30_000)
            assert "Error" not in page.locator("#status").inner_text()
            assert page.locator("#legend").is_visible()

            page.reload()
            page.locator("#photo-input input[type=file]").set_input_files(str(broken))
            sync_api.expect(page.locator("#status")).to_contain_text("cannot read image", timeout=60_000)
            assert "broken.jpg" in page.locator("#status").inner_text()
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
