"""The browser demo (Gradio): classify an uploaded image zero-shot with a heat map of the top label, and search an
embedding index by text or image.

The page only wires inputs to the library (:mod:`openmedclip.io`, :mod:`openmedclip.tasks`, :mod:`openmedclip.index`);
every problem a person can cause (an unreadable upload, no labels, an unknown bank) is shown in the page as one
readable message.
"""

from __future__ import annotations

import html
import io
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no telemetry, no version check

import gradio as gr
from matplotlib.figure import Figure
from PIL import Image

from openmedclip.errors import ImageReadError, InvalidInputError, OpenMedClipError
from openmedclip.io import WINDOW_PRESETS, MedicalImage, read_image, to_model_picture
from openmedclip.io.convert import IntensityScalingWarning
from openmedclip.prompts import TEMPLATE_SETS, list_banks
from openmedclip.serve.session import PRESETS, ModelPool, preset

if TYPE_CHECKING:
    from openmedclip.index import ArchiveIndex, SearchHit
    from openmedclip.tasks.zeroshot import ZeroShotResult

PREVIEW_SIDE = 768
"""Longest side, in pixels, of the preview of an upload."""

THUMBNAIL_SIDE = 256
"""Longest side, in pixels, of a search hit's thumbnail."""

TOP_LABELS = 5
"""Labels drawn as bars; the table lists every label."""

PROBABILITY_DIGITS = 4
"""Decimals of the probabilities in the table."""

DISCLAIMER = "For research and demonstration only: not a medical device, not for diagnosis."

FILE_BOOKKEEPING = ("sha256", "size", "mtime")
"""Hit metadata the table leaves out: how the index tracks files, not what they show."""

PROBABILITY_HEADERS = ["label", "probability", "chosen"]
HIT_HEADERS = ["rank", "score", "path", "metadata"]


def page_error(message: str) -> gr.Error:
    """An error shown in the page as a message (as text: the page renders it as HTML), not logged as a crash."""
    return gr.Error(html.escape(message), print_exception=False)


@contextmanager
def readable_errors() -> Iterator[None]:
    """Turn the library's errors into a message shown in the page; an unreadable upload is named by its file name,
    not the server's temporary path."""
    try:
        yield
    except ImageReadError as error:
        name = Path(error.path).name
        raise page_error(f"{name}: {error.problem.replace(error.path, name)}") from None
    except OpenMedClipError as error:
        raise page_error(str(error)) from None


def _optional(text: str | None) -> str | None:
    """A dropdown's or text box's value, None when blank."""
    stripped = (text or "").strip()
    return stripped or None


def _uploaded(file: str | None) -> str:
    if not file:
        raise page_error("upload an image first (PNG, JPEG, TIFF, DICOM or NIfTI)")
    return file


def parse_labels(text: str | None) -> list[str]:
    """Comma-separated labels, blanks dropped; an empty list is an error shown in the page."""
    labels = [label.strip() for label in (text or "").split(",") if label.strip()]
    if not labels:
        raise page_error("type at least one label (comma-separated) or pick a preset")
    return labels


def display_picture(image: MedicalImage, side: int) -> tuple[Image.Image, bool]:
    """The image as the model sees it (8-bit, windowed by the io layer), at most ``side`` pixels on its longest
    side, and whether its grey levels had to be scaled to its own range (no window in the file)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IntensityScalingWarning)
        picture = to_model_picture(image)
    picture.thumbnail((side, side))
    return picture, any(issubclass(warning.category, IntensityScalingWarning) for warning in caught)


def describe_image(image: MedicalImage) -> str:
    """One line on how the file was read: format, size, modality, window."""
    rows, columns = image.pixels.shape[:2]
    parts = [str(image.meta.get("format", "image")).upper(), f"{columns}×{rows} px"]
    if image.modality:
        parts.append(image.modality)
    if image.window is not None:
        centre, width = image.window
        parts.append(f"window {centre:g}/{width:g}")
    return " · ".join(parts)


def figure_picture(figure: Figure) -> Image.Image:
    """A matplotlib figure rendered to a PIL image (PNG, tight bounding box)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def top_label_phrase(result: ZeroShotResult) -> str:
    """The first prompt of the most probable label: the phrase its heat map is drawn for."""
    row = result.probabilities[0]
    label = result.labels[int(row.argmax())]
    prompts = result.prompts[label]
    return str(prompts["positive"][0] if isinstance(prompts, dict) else prompts[0])


def probability_rows(result: ZeroShotResult) -> list[list[str]]:
    """Table rows (label, probability, chosen mark), most probable first."""
    prediction = result.predictions()[0]
    ranked = sorted(prediction.probabilities.items(), key=lambda item: item[1], reverse=True)
    return [[label, f"{p:.{PROBABILITY_DIGITS}f}", "✓" if label in prediction.labels else ""] for label, p in ranked]


class ClassifyPage:
    """The callbacks of the Classify tab: read an upload, fill a preset, classify and draw the heat map."""

    def __init__(self, pool: ModelPool):
        self.pool = pool

    def read(self, file: str | None, window: str | None) -> MedicalImage:
        """The uploaded file as read by the io layer, with the chosen window preset (blank: the file's own)."""
        with readable_errors():
            return read_image(_uploaded(file), window=_optional(window))

    def preview(self, file: str | None, window: str | None) -> tuple[Image.Image | None, str]:
        """The upload as the model sees it and a line describing it; nothing when the upload was cleared."""
        if not file:
            return None, ""
        image = self.read(file, window)
        picture, self_scaled = display_picture(image, PREVIEW_SIDE)
        if self_scaled:
            gr.Warning("the file has no display window: its grey levels were scaled to its own range; pick a "
                       "display window for a fixed mapping")
        return picture, describe_image(image)

    @staticmethod
    def fill_preset(name: str | None) -> tuple[Any, Any, Any]:
        """Labels, bank and multi-label setting of the chosen preset (unchanged for 'custom labels')."""
        if not name:
            return gr.update(), gr.update(), gr.update()
        with readable_errors():
            chosen = preset(name)
        return ", ".join(chosen.labels), chosen.bank, chosen.multilabel

    def zero_shot(
        self, image: MedicalImage, labels: list[str], model: str | None, templates: str | None, bank: str | None,
        multilabel: bool,
    ) -> ZeroShotResult:
        """:func:`~openmedclip.tasks.zeroshot.zero_shot` of one image with the page's choices."""
        from openmedclip.tasks.zeroshot import zero_shot

        with readable_errors():
            result = zero_shot(self.pool.get(_optional(model)), [image], labels, templates=_optional(templates),
                               bank=_optional(bank), multilabel=multilabel)
        if result.errors:
            raise page_error(result.errors[0].message)
        return result

    def heatmap(self, image: MedicalImage, model: str | None, text: str) -> Image.Image:
        """The similarity map of ``text`` drawn over the image, with a colour bar."""
        from openmedclip.eval.plots import heatmap_figure
        from openmedclip.tasks.heatmap import similarity_map

        with readable_errors():
            similarity = similarity_map(self.pool.get(_optional(model)), image, text)
        return figure_picture(heatmap_figure(similarity))

    def classify(
        self, file: str | None, labels_text: str | None, model: str | None, templates: str | None, bank: str | None,
        multilabel: bool, window: str | None, heatmap_text: str | None,
    ) -> tuple[dict[str, float], list[list[str]], Image.Image, str]:
        """Probabilities (for ``gr.Label`` and the table), the heat map of the typed phrase or else of the top
        label, and a line on the prompts used."""
        image = self.read(file, window)
        labels = parse_labels(labels_text)
        result = self.zero_shot(image, labels, model, templates, bank, multilabel)
        phrase = _optional(heatmap_text) or top_label_phrase(result)
        probabilities = result.predictions()[0].probabilities
        summary = self.summary(result, _optional(bank) or result.bank, phrase)
        return probabilities, probability_rows(result), self.heatmap(image, model, phrase), summary

    @staticmethod
    def summary(result: ZeroShotResult, bank: str | None, phrase: str) -> str:
        """How the labels were asked (``bank``: the sentence bank the prompts came from) and what the heat map
        shows."""
        how = (f"multi-label: each label judged on its own, chosen at probability ≥ {result.threshold:g}"
               if result.mode == "multilabel" else "multi-class: probabilities sum to 1")
        prompts = f"sentence bank `{bank}`" if bank else "prompt templates"
        return f"{how}; prompts from {prompts}. Heat map: “{phrase}”."


def parse_filter(text: str | None) -> dict[str, str]:
    """A search filter typed as ``KEY=VALUE, KEY=VALUE`` (e.g. ``modality=CT``); blank: none."""
    chosen = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not (sep and key.strip() and value.strip()):
            raise page_error(f"filter {part.strip()!r} must look like KEY=VALUE, e.g. modality=CT")
        chosen[key.strip()] = value.strip()
    return chosen


SearchOutputs = tuple[list[list[Any]], list[tuple[Image.Image, str]]]
"""Table rows and captioned thumbnails of the hits."""


class SearchPage:
    """The callbacks of the Search tab: the index's top hits for a text or an image, with thumbnails."""

    def __init__(self, pool: ModelPool, index: ArchiveIndex):
        self.pool = pool
        self.index = index

    def by_text(self, text: str | None, k: float, where: str | None = None) -> SearchOutputs:
        """The ``k`` nearest images to a text, among those matching the filter ``where``."""
        query = _optional(text)
        if query is None:
            raise page_error("type a text to search for")
        chosen = parse_filter(where)
        with readable_errors():
            hits = self.index.search_text(self.pool.get(self.index.model), query, k=int(k), where=chosen)
        return self.show(hits)

    def by_image(self, file: str | None, k: float, where: str | None = None) -> SearchOutputs:
        """The ``k`` nearest images to an uploaded one, among those matching the filter ``where``."""
        chosen = parse_filter(where)
        with readable_errors():
            image = read_image(_uploaded(file))
            hits = self.index.search_image(self.pool.get(self.index.model), image, k=int(k), where=chosen)
        return self.show(hits)

    def show(self, hits: list[SearchHit]) -> SearchOutputs:
        """Table rows (rank, score, path in the archive, header metadata as the filter writes it) and a thumbnail of
        every hit whose file can still be read."""
        rows, thumbnails = [], []
        for hit in hits:
            metadata = ", ".join(f"{key}={value}" for key, value in hit.metadata.items()
                                 if key not in FILE_BOOKKEEPING and value not in (None, ""))
            rows.append([hit.rank, f"{hit.score:.4f}", hit.path, metadata])
            try:
                picture, _ = display_picture(read_image(self.index.archive / hit.path), THUMBNAIL_SIDE)
            except OpenMedClipError:
                continue
            thumbnails.append((picture, f"{hit.rank}. {Path(hit.path).name} ({hit.score:.3f})"))
        return rows, thumbnails


def _classify_tab(page: ClassifyPage, pool: ModelPool) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            upload = gr.File(label="Image (PNG, JPEG, TIFF, DICOM, NIfTI)", type="filepath", elem_id="upload")
            preview = gr.Image(label="As the model sees it", type="pil", interactive=False, height=320,
                               elem_id="preview")
            described = gr.Markdown(elem_id="image-info")
        with gr.Column(scale=1):
            presets = gr.Dropdown([("Custom labels", "")] + [(p.title, p.name) for p in PRESETS.values()],
                                  value="", label="Preset", elem_id="preset")
            labels = gr.Textbox(label="Labels (comma-separated)", placeholder="e.g. normal, pneumonia",
                                elem_id="labels")
            multilabel = gr.Checkbox(label="Multi-label (each label judged on its own)", elem_id="multilabel")
            heatmap_text = gr.Textbox(label="Heat map phrase (blank: the top label)", elem_id="heatmap-text")
            with gr.Accordion("Model and prompts", open=False):
                model = gr.Dropdown(pool.allowed, value=pool.default, label="Model", elem_id="model")
                templates = gr.Dropdown([("The model's own", "")] + [(name, name) for name in TEMPLATE_SETS],
                                        value="", allow_custom_value=True,
                                        label="Prompt templates (a set, or your own with '{}')", elem_id="templates")
                bank = gr.Dropdown([("None (templates)", "")] + [(name, name) for name in list_banks()], value="",
                                   label="Sentence bank", elem_id="bank")
                window = gr.Dropdown([("The file's own", "")] + [(name, name) for name in WINDOW_PRESETS],
                                     value="", label="Display window", elem_id="window")
            run = gr.Button("Classify", variant="primary", elem_id="classify")
    with gr.Row():
        with gr.Column(scale=1):
            top = gr.Label(label="Most probable", num_top_classes=TOP_LABELS, elem_id="probabilities")
            table = gr.Dataframe(headers=PROBABILITY_HEADERS, label="All labels", interactive=False,
                                 elem_id="probability-table")
        with gr.Column(scale=1):
            heatmap = gr.Image(label="Heat map", type="pil", interactive=False, height=420, elem_id="heatmap")
            summary = gr.Markdown(elem_id="summary")
    upload.change(page.preview, [upload, window], [preview, described])
    window.change(page.preview, [upload, window], [preview, described])
    presets.change(page.fill_preset, presets, [labels, bank, multilabel])
    run.click(page.classify, [upload, labels, model, templates, bank, multilabel, window, heatmap_text],
              [top, table, heatmap, summary])


def _search_tab(page: SearchPage) -> None:
    from openmedclip.index import FILTER_KEYS

    gr.Markdown(f"{page.index.count} images, embedded with `{page.index.model}`.")
    with gr.Row():
        with gr.Column(scale=1):
            text = gr.Textbox(label="Text query", placeholder="e.g. right lower lobe consolidation",
                              elem_id="search-text")
            by_text = gr.Button("Search by text", variant="primary", elem_id="search-text-button")
        with gr.Column(scale=1):
            image = gr.File(label="Image query", type="filepath", elem_id="search-image")
            by_image = gr.Button("Search by image", elem_id="search-image-button")
    with gr.Row():
        k = gr.Slider(1, 50, value=10, step=1, label="Results", elem_id="search-k")
        where = gr.Textbox(label=f"Only files with KEY=VALUE, comma-separated (keys: {', '.join(FILTER_KEYS)})",
                           placeholder="e.g. modality=CT", elem_id="search-filter")
    hits = gr.Dataframe(headers=HIT_HEADERS, label="Nearest images", interactive=False, wrap=True,
                        elem_id="search-hits")
    thumbnails = gr.Gallery(label="Thumbnails", columns=5, height="auto", elem_id="search-thumbnails")
    for trigger in (by_text.click, text.submit):
        trigger(page.by_text, [text, k, where], [hits, thumbnails])
    by_image.click(page.by_image, [image, k, where], [hits, thumbnails])


def build_demo(pool: ModelPool, index_path: Path | None = None, *, title: str = "openmedclip") -> gr.Blocks:
    """The demo page: a Classify tab with the pool's models, and a Search tab over the index at ``index_path``
    (searched with the model it was built with, which must be one of the pool's)."""
    search = None
    if index_path is not None:
        from openmedclip.index import open_index

        index = open_index(index_path)
        if index.model not in pool.allowed:
            raise InvalidInputError(f"index {index_path} was built with model {index.model!r}, which is not served "
                                    f"here; served models: {', '.join(pool.allowed)}")
        search = SearchPage(pool, index)
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        gr.Markdown(f"# {title}\nZero-shot classification and heat maps of medical images. {DISCLAIMER}")
        with gr.Tabs():
            with gr.Tab("Classify", id="classify"):
                _classify_tab(ClassifyPage(pool), pool)
            if search is not None:
                with gr.Tab("Search", id="search"):
                    _search_tab(search)
    return demo


def launch(demo: gr.Blocks, *, host: str = "127.0.0.1", port: int = 7860, share: bool = False) -> str:
    """Start serving the page in a thread (no telemetry; a public share link only with ``share``) and return its
    address; ``demo.block_thread()`` waits until interrupted, ``demo.close()`` stops it."""
    demo.queue()
    demo.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=True, quiet=True)
    return str(demo.share_url if share and demo.share_url else demo.local_url)
