"""openmedclip: contrastive language-image models for medical images.

Public API (imported on first use, so ``import openmedclip`` stays light)::

    from openmedclip import load_model, read_image, zero_shot
    model = load_model("biomedclip")
    result = zero_shot(model, ["scan.dcm"], ["normal", "pneumonia"])
"""

from __future__ import annotations

from openmedclip.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "openmedclip.models",
    "list_models": "openmedclip.models",
    "save_model": "openmedclip.models",
    "LoadedModel": "openmedclip.models",
    "read_image": "openmedclip.io",
    "to_model_input": "openmedclip.io",
    "MedicalImage": "openmedclip.io",
    "encode_images": "openmedclip.embed",
    "encode_texts": "openmedclip.embed",
    "zero_shot": "openmedclip.tasks.zeroshot",
    "ZeroShotResult": "openmedclip.tasks.zeroshot",
    "linear_probe": "openmedclip.tasks.probe",
    "ProbeResult": "openmedclip.tasks.probe",
    "retrieve": "openmedclip.tasks.retrieval",
    "retrieval_metrics": "openmedclip.tasks.retrieval",
    "RetrievalResult": "openmedclip.tasks.retrieval",
    "similarity_map": "openmedclip.tasks.heatmap",
    "SimilarityMap": "openmedclip.tasks.heatmap",
    "multiclass_metrics": "openmedclip.metrics",
    "multilabel_metrics": "openmedclip.metrics",
}

__all__ = [*_EXPORTS, "__version__"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
