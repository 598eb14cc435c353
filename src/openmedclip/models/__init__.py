"""Loading CLIP models offline: registry names, open_clip architectures, hub folders and checkpoints."""

from openmedclip.models.convert import convert_torchscript
from openmedclip.models.device import resolve_device
from openmedclip.models.load import list_models, load_model
from openmedclip.models.loaded import LoadedModel, ModelSpec
from openmedclip.models.registry import DEFAULT_MODEL
from openmedclip.models.save import save_model

__all__ = [
    "DEFAULT_MODEL",
    "LoadedModel",
    "ModelSpec",
    "convert_torchscript",
    "list_models",
    "load_model",
    "resolve_device",
    "save_model",
]
