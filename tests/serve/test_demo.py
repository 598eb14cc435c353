"""The demo page: its callbacks called directly (tiny model), and the real page driven in headless Chromium with
the bundled model on real chest X-rays (PNG and DICOM), checked against ``zero_shot`` called directly."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

gr = pytest.importorskip("gradio", reason="gradio (the 'demo' extra) is not installed")

from PIL import Image  # noqa: E402

from openmedclip.errors import OpenMedClipError  # noqa: E402
from openmedclip.serve.demo import ClassifyPage, SearchPage, build_demo, launch  # noqa: E402
from openmedclip.serve.session import PRESETS, ModelPool, preset  # noqa: E402
from openmedclip.tasks.zeroshot import zero_shot  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SCREENSHOT_ENV = "OPENMEDCLIP_DEMO_SCREENSHOT"
"""When set, the browser test also writes its screenshot of the classified chest X-ray there (docs/images)."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _expected_rows(result) -> list[list[str]]:
    """(label, probability to 4 decimals, chosen mark), most probable first: what the page must show."""
    prediction = result.predictions()[0]
    ranked = sorted(prediction.probabilities.items(), key=lambda item: -item[1])
    return [[label, f"{p:.4f}", "✓" if label in prediction.labels else ""] for label, p in ranked]


# the callbacks, without a browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_page(tiny_model_dir) -> ClassifyPage:
    return ClassifyPage(ModelPool(str(tiny_model_dir), device="cpu"))


def test_preview_and_presets(tiny_page, image_folder, ct_dicom, tmp_path):
    picture, described = tiny_page.preview(str(image_folder / "img0.png"), "")
    assert picture.size == (44, 40) and picture.mode == "L"
    assert described == "PNG · 44×40 px"
    assert tiny_page.preview(None, "") == (None, "")
    deep = tmp_path / "deep.png"
    Image.fromarray((np.arange(64 * 48, dtype=np.uint16) * 20).reshape(48, 64)).save(deep)
    with pytest.warns(UserWarning, match="no display window"):
        picture, described = tiny_page.preview(str(deep), "")
    assert picture.size == (64, 48) and described.startswith("PNG · 64×48 px")
    with pytest.raises(gr.Error, match="deep.png: a window applies only to CT"):
        tiny_page.preview(str(deep), "bone")
    picture, described = tiny_page.preview(str(ct_dicom), "bone")
    assert described.endswith("window 400/1800")
    nifti = Path(pytest.importorskip("nibabel").__file__).parent / "tests" / "data" / "example4d.nii.gz"
    with pytest.warns(UserWarning, match="no display window"):
        picture, described = tiny_page.preview(str(nifti), "")
    assert picture.size == (128, 96) and described == "NIFTI · 128×96 px"
    tb = preset("tb")
    assert tiny_page.fill_preset("tb") == (", ".join(tb.labels), tb.bank, tb.multilabel)
    assert all(update == gr.update() for update in tiny_page.fill_preset(""))


def test_classify_matches_zero_shot_and_draws_the_heat_map(tiny_page, image_folder):
    image = image_folder / "img2.png"
    top, rows, heatmap, summary = tiny_page.classify(str(image), "CT, MRI , X-ray,", "", "", "", False, "", "")
    expected = zero_shot(tiny_page.pool.get(), [image], ["CT", "MRI", "X-ray"])
    assert top == expected.predictions()[0].probabilities
    assert rows == _expected_rows(expected)
    assert isinstance(heatmap, Image.Image) and min(heatmap.size) > 100
    assert "multi-class" in summary and "Heat map: “" in summary

    _, rows, _, summary = tiny_page.classify(str(image), "Cardiomegaly, Edema", "", "single", "chest_xray", True, "",
                                             "left pleural effusion")
    expected = zero_shot(tiny_page.pool.get(), [image], ["Cardiomegaly", "Edema"], templates="single",
                         bank="chest_xray", multilabel=True)
    assert rows == _expected_rows(expected)
    assert "multi-label" in summary and "`chest_xray`" in summary and "“left pleural effusion”" in summary


def test_mistakes_are_readable_messages(tiny_page, image_folder, tmp_path):
    image = str(image_folder / "img0.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    cases = [
        ((None, "a, b"), "upload an image first"),
        ((image, " , "), "at least one label"),
        ((str(broken), "a, b"), "broken.png: "),
    ]
    for (file, labels), message in cases:
        with pytest.raises(gr.Error) as raised:
            tiny_page.classify(file, labels, "", "", "", False, "", "")
        assert message in raised.value.message and str(tmp_path) not in raised.value.message
    with pytest.raises(gr.Error, match="not served here"):
        tiny_page.classify(image, "a, b", "someone-elses-model", "", "", False, "", "")
    with pytest.raises(gr.Error, match="slot"):
        tiny_page.classify(image, "a, b", "", "a template without a slot", "", False, "", "")
    with pytest.raises(gr.Error, match="broken.png"):
        tiny_page.preview(str(broken), "")


def test_search_callbacks(tiny_model_dir, image_folder, tmp_path):
    index_module = pytest.importorskip("openmedclip.index", reason="the index package (openmedclip.index) is not "
                                       "installed")
    pool = ModelPool(str(tiny_model_dir), device="cpu")
    index_module.build_index(image_folder, pool.get(), tmp_path / "index")
    build_demo(pool, tmp_path / "index")
    with index_module.open_index(tmp_path / "index") as index:
        page = SearchPage(pool, index)
        rows, thumbnails = page.by_text("a chest x-ray", 3)
        assert [row[0] for row in rows] == [1, 2, 3] and len(thumbnails) == 3
        expected = index.search_text(pool.get(), "a chest x-ray", k=3)
        assert [(row[1], row[2]) for row in rows] == [(f"{hit.score:.4f}", hit.path) for hit in expected]
        rows, _ = page.by_image(str(image_folder / "img0.png"), 1, "format=png")
        assert rows[0][2] == "img0.png" and "format=png" in rows[0][3] and "sha256" not in rows[0][3]
        with pytest.raises(gr.Error, match="type a text"):
            page.by_text("  ", 3)
        with pytest.raises(gr.Error, match="KEY=VALUE"):
            page.by_text("x", 3, "modality")
        with pytest.raises(gr.Error, match="unknown filter key"):
            page.by_text("x", 3, "colour=red")
    with pytest.raises(OpenMedClipError, match="not served here"):
        build_demo(ModelPool("openmedclip-base"), tmp_path / "index")


# the page in a browser -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[ModelPool, str, Path | None]]:
    """The demo with the bundled model on a free loopback port, with a Search tab over the repository's example
    images when the index package is installed: (pool, address, index folder or None)."""
    pool = ModelPool("openmedclip-base", device="cpu")
    index_path = None
    try:
        from openmedclip.index import build_index
    except ImportError:
        pass
    else:
        index_path = tmp_path_factory.mktemp("demo") / "index"
        build_index(EXAMPLES, pool.get(), index_path)
    demo = build_demo(pool, index_path)
    address = launch(demo, port=_free_port())
    yield pool, address, index_path
    demo.close()


@pytest.fixture()
def page(browser, served):
    """A fresh tab on the demo; afterwards, checks that the page asked nothing of any other server."""
    opened = browser.new_page(viewport={"width": 1280, "height": 1000})
    elsewhere: list[str] = []
    opened.on("request", lambda request: None if request.url.startswith((served[1], "data:", "blob:"))
              else elsewhere.append(request.url))
    opened.goto(served[1])
    opened.locator("#classify").wait_for()
    yield opened
    opened.close()
    assert elsewhere == [], "the page fetched from other servers"


def _upload(page, path: Path) -> None:
    page.locator("#upload input[type=file]").set_input_files(str(path))
    page.locator("#preview img").wait_for()


def _table(page, element: str) -> list[list[str]]:
    """The body cells of the table (``gr.Dataframe``) with that element id, row by row."""
    return page.evaluate(
        """id => [...document.querySelectorAll(`#${id} [role=row]`)]
                 .map(row => [...row.querySelectorAll('[role=gridcell]')].map(cell => cell.innerText.trim()))
                 .filter(cells => cells.length > 0)""", element)


def _wait_for_cells(page, element: str, count: int) -> None:
    """Until the table with that element id shows at least ``count`` non-empty cells."""
    page.wait_for_function(
        "([id, n]) => [...document.querySelectorAll(`#${id} [role=gridcell]`)]"
        ".filter(cell => cell.innerText.trim()).length >= n", arg=[element, count], timeout=60_000)


def _save_small(screenshot: Path, destination: Path) -> None:
    """The screenshot as a 256-colour dithered PNG (a fraction of the size, for the documentation)."""
    picture = Image.open(screenshot).convert("RGB")
    palette = picture.quantize(256)
    picture.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(destination, optimize=True)


def _toast(page, text: str) -> str:
    """The text of the message in the page that contains ``text`` (waiting for it)."""
    toast = page.locator("[data-testid=toast-text]", has_text=text).first
    toast.wait_for()
    return toast.inner_text()


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("image", "choice"),
    [("txv_test_cxr/00000001_000.png", "cxr_findings"),
     ("txv_test_cxr/1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm", "normal, pneumonia")],
    ids=["png-preset", "dicom-typed-labels"],
)
def test_classify_in_the_browser(page, served, shared_data, tmp_path, image, choice):
    path = shared_data / image
    _upload(page, path)
    if choice in PRESETS:
        chosen = preset(choice)
        page.locator("#preset input").click()
        page.get_by_role("option", name=chosen.title).click()
        page.wait_for_function("document.querySelector('#labels textarea').value.includes(', ')")
        assert page.locator("#labels textarea").input_value() == ", ".join(chosen.labels)
        assert page.locator("#multilabel input").is_checked() == chosen.multilabel
        labels, options = list(chosen.labels), {"bank": chosen.bank, "multilabel": chosen.multilabel}
    else:
        page.locator("#labels textarea").fill(choice)
        labels, options = [label.strip() for label in choice.split(",")], {}
    page.locator("#classify").click()
    _wait_for_cells(page, "probability-table", 2 * len(labels))
    page.wait_for_function("() => { const img = document.querySelector('#heatmap img');"
                           " return img && img.complete && img.naturalWidth > 100; }")

    expected = zero_shot(served[0].get(), [path], labels, **options)
    assert _table(page, "probability-table") == _expected_rows(expected)
    assert page.locator("#probabilities h2").inner_text().strip() == _expected_rows(expected)[0][0]
    assert "Heat map: “" in page.locator("#summary").inner_text()

    shot = tmp_path / "demo.png"
    page.screenshot(path=str(shot), full_page=True)
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500
    heatmap_box = page.locator("#heatmap img").bounding_box()
    assert heatmap_box is not None and min(heatmap_box["width"], heatmap_box["height"]) > 100
    destination = os.environ.get(SCREENSHOT_ENV)
    if destination and image.endswith(".png"):
        _save_small(shot, Path(destination))


def test_mistakes_show_as_messages_in_the_page(page, tmp_path):
    page.locator("#classify").click()
    assert _toast(page, "upload an image first") == "upload an image first (PNG, JPEG, TIFF, DICOM or NIfTI)"
    broken = tmp_path / "scan.dcm"
    broken.write_bytes(b"DICM" * 10)
    page.locator("#upload input[type=file]").set_input_files(str(broken))
    message = _toast(page, "scan.dcm: ")
    assert message.startswith("scan.dcm: ") and "Traceback" not in message and str(tmp_path) not in message


def test_search_in_the_browser(page, served):
    pool, _, index_path = served
    if index_path is None:
        pytest.skip("the index package (openmedclip.index) is not installed")
    from openmedclip.index import open_index

    page.get_by_role("tab", name="Search").click()
    page.locator("#search-text textarea").fill("a head CT scan")
    page.locator("#search-text-button").click()
    with open_index(index_path) as index:
        expected = index.search_text(pool.get(), "a head CT scan", k=10)
    _wait_for_cells(page, "search-hits", 3 * len(expected))
    shown = _table(page, "search-hits")
    assert [row[:3] for row in shown] == [[str(hit.rank), f"{hit.score:.4f}", hit.path] for hit in expected]
    page.locator("#search-thumbnails img").nth(len(expected) - 1).wait_for()
