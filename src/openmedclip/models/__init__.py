"""Loading CLIP models offline through model families: registry names, architectures, folders and checkpoints.

Names are imported on first use, so ``openmedclip.models`` stays light (no torch) until a model is loaded.
"""

from __future__ import annotations

from openmedclip.lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_MODEL": "openmedclip.models.registry",
    "REGISTRY": "openmedclip.models.registry",
    "RegistryEntry": "openmedclip.models.registry",
    "register_model": "openmedclip.models.registry",
    "ModelFamily": "openmedclip.models.family",
    "Geometry": "openmedclip.models.family",
    "Resolved": "openmedclip.models.family",
    "register_family": "openmedclip.models.family",
    "get_family": "openmedclip.models.family",
    "ClipModel": "openmedclip.models.protocol",
    "LoadedModel": "openmedclip.models.loaded",
    "ModelSpec": "openmedclip.models.loaded",
    "list_models": "openmedclip.models.load",
    "load_model": "openmedclip.models.load",
    "save_model": "openmedclip.models.load",
    "download_model": "openmedclip.models.download",
    "resolve_device": "openmedclip.models.device",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
