"""What the REST service and the demo share: models loaded once each and shared between requests, and the label
presets offered to people who do not want to type labels."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openmedclip.errors import InvalidInputError
from openmedclip.models.loaded import LoadedModel


@dataclass(frozen=True)
class Preset:
    """A ready-made zero-shot question: labels with the sentence bank that phrases them."""

    name: str
    title: str
    labels: tuple[str, ...]
    bank: str
    multilabel: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "labels": list(self.labels), "bank": self.bank,
                "multilabel": self.multilabel}


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("modality", "Imaging modality", ("CT", "MRI", "X-ray", "ultrasound", "fundus photograph",
                                                "mammography", "histopathology", "dermoscopy"), "modality"),
        Preset("cxr_findings", "Chest X-ray findings (multi-label)",
               ("No Finding", "Cardiomegaly", "Lung Opacity", "Edema", "Consolidation", "Pneumonia", "Atelectasis",
                "Pneumothorax", "Pleural Effusion", "Fracture"), "chest_xray", multilabel=True),
        Preset("tb", "Tuberculosis on a chest X-ray", ("No Finding", "Tuberculosis"), "chest_xray"),
        Preset("pneumonia", "Pneumonia on a paediatric chest X-ray", ("normal", "pneumonia"),
               "pediatric_chest_xray"),
    )
}
"""Label presets by name."""


def preset(name: str) -> Preset:
    """The preset called ``name``, or an error listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise InvalidInputError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None


class ModelPool:
    """Models loaded on first use, once each, and shared by every request (safe to call from many threads).

    ``allowed`` limits which names clients may ask for (default: only ``default``); ``device`` and ``precision``
    go to :func:`~openmedclip.models.load_model`.
    """

    def __init__(
        self,
        default: str = "openmedclip-base",
        allowed: Sequence[str] | None = None,
        *,
        device: str | None = None,
        precision: str = "auto",
    ):
        self.default = default
        self.allowed = list(dict.fromkeys([default, *(allowed or [])]))
        self.device = device
        self.precision = precision
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def get(self, name: str | None = None) -> LoadedModel:
        """The model called ``name`` (default: the pool's default), loading it the first time."""
        chosen = name or self.default
        if chosen not in self.allowed:
            raise InvalidInputError(f"model {chosen!r} is not served here; served models: {', '.join(self.allowed)}")
        with self._lock:
            if chosen not in self._models:
                from openmedclip.models import load_model

                self._models[chosen] = load_model(chosen, device=self.device, precision=self.precision)
            return self._models[chosen]

    def loaded(self) -> list[str]:
        """The names of the models loaded so far."""
        with self._lock:
            return list(self._models)
