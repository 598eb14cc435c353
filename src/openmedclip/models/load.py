"""``load_model``: any name or path -> the family that reads it -> a :class:`LoadedModel`; plus listing and saving."""

from __future__ import annotations

import dataclasses
import difflib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openmedclip.errors import InvalidInputError, ModelLoadError, RandomWeightsWarning
from openmedclip.models.family import FAMILIES, ModelFamily, get_family
from openmedclip.models.loaded import LoadedModel, ModelSpec
from openmedclip.models.registry import registry
from openmedclip.models.saved_folder import is_saved_folder, load_saved_weights, read_folder

if TYPE_CHECKING:
    import torch


FALLBACK_FAMILY = "open_clip"
"""The family that reads a path no family recognises (and so explains what an open_clip folder holds)."""

RUNTIMES = ("auto", "library")


def list_models() -> list[str]:
    """Registry names (pretrained, e.g. ``'biomedclip'``, ``'openai/ViT-B-16'``), then each family's architectures.

    Fast: nothing heavy is imported.
    """
    names = sorted(registry())
    for family in FAMILIES.values():
        names += [name for name in family.architectures() if name not in names]
    return names


def load_model(
    name_or_path: str | Path,
    *,
    device: str | torch.device | None = None,
    precision: str = "auto",
    checkpoint: str | Path | None = None,
    runtime: str = "auto",
) -> LoadedModel:
    """Load a CLIP model offline, in eval mode, on ``device`` with its floating weights in ``precision``.

    ``name_or_path`` is, in this order of precedence:

    - a registry name (see :mod:`openmedclip.models.registry`): pretrained weights found in
      ``$OPENMEDCLIP_MODELS/<name>/`` or the Hugging Face cache, e.g. ``'biomedclip'``, ``'openai/ViT-B-16'``;
    - an architecture name of a family (``'ViT-B-16'``): random weights, or those in ``checkpoint``;
    - a folder ``save_model`` wrote for a family without a published format (``openmedclip_model.json``);
    - a path a family recognises: for open_clip a hub folder (``open_clip_config.json`` +
      ``open_clip_model.safetensors``), a checkpoint file with an ``open_clip_config.json`` beside it, or an
      architecture file (``*.json`` shaped like ``open_clip_config.json``: random weights except the frozen towers
      its ``base_weights`` name, the starting point of training a new model).

    A ``Path`` is always read as a path. ``checkpoint`` replaces the weights of any of these; every key of a
    checkpoint must match the model.
    ``device`` None picks CUDA, else MPS, else CPU; ``precision`` is 'fp32', 'bf16' (fast on CPU), 'fp16' or
    'auto' (the default): the device's own choice (:func:`openmedclip.precision.default_precision`: bf16 on a CPU
    with AVX-512 BF16 or AMX and on recent GPUs, fp16 on older GPUs, else fp32; ``$OPENMEDCLIP_PRECISION``
    replaces it).
    The returned ``dtype`` is the resolved one; a convolutional image tower in bf16 on the CPU gets channels-last
    weights (faster there, see :func:`openmedclip.models.device.prefers_channels_last`); in bf16 on the CPU every
    plain linear layer gets its weight prepacked by oneDNN
    (:func:`openmedclip.models.packed_linear.pack_linear_layers`).
    A model loaded onto the CPU makes glibc's allocator keep freed tensor memory for reuse
    (:func:`openmedclip.hardware.keep_freed_memory`).
    ``runtime`` 'auto' lets a family build a covered architecture from plain-torch modules with the same weights
    and outputs (the open_clip family's timm ResNet + BERT models, the built-in one among them: start-up without
    importing open_clip, timm or transformers); 'library' always builds the library's classes (training and tower
    locking need them).
    A model without trained weights (``source`` 'random') gives a ``RandomWeightsWarning``.
    Raises ``ModelLoadError`` naming the model and the problem.
    """
    from openmedclip.hardware import keep_freed_memory
    from openmedclip.models.device import apply_memory_format, resolve_device
    from openmedclip.models.packed_linear import pack_linear_layers
    from openmedclip.precision import inference_dtype

    name = str(name_or_path)
    target = resolve_device(device)
    try:
        dtype = inference_dtype(precision, target)
    except InvalidInputError as error:
        raise ModelLoadError(name, str(error)) from None
    if runtime not in RUNTIMES:
        raise ModelLoadError(name, f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    weights = Path(checkpoint).expanduser() if checkpoint is not None else None
    path = Path(name_or_path).expanduser()
    if is_saved_folder(path) and not (isinstance(name_or_path, str) and name_or_path in registry()):
        family, resolved = read_folder(path)
        resolved = dataclasses.replace(resolved, runtime=runtime)
        if weights is not None:
            resolved = dataclasses.replace(resolved, weights=weights)
        model = family.build(resolved, name=name)
        load_saved_weights(family, model, resolved, name=name)
    else:
        family, entry = _family_for(name_or_path)
        resolved = dataclasses.replace(family.resolve(name_or_path, checkpoint=weights, entry=entry), runtime=runtime)
        model = family.build(resolved, name=name)
        family.load_weights(model, resolved, name=name)
    preprocess, config = family.preprocess(resolved, model)
    tokenizer, context_length = family.tokenizer(resolved, name=name)
    model.to(device=target, dtype=dtype).eval()
    apply_memory_format(model, target, dtype)
    pack_linear_layers(model, target, dtype)
    if target.type == "cpu":
        keep_freed_memory()
    spec = ModelSpec(
        name=name,
        family=family.name,
        architecture=resolved.architecture,
        source=str(resolved.weights) if resolved.weights is not None else "random",
        format=resolved.format,
        config=config,
        folder=str(resolved.folder) if resolved.folder is not None else None,
        hf_repo=resolved.hf_repo,
    )
    if spec.source == "random":
        warnings.warn(
            f"model '{name}' has random weights (an architecture without a checkpoint): its outputs mean nothing "
            "until it is trained",
            RandomWeightsWarning,
            stacklevel=2,
        )
    return LoadedModel(model, preprocess, tokenizer, context_length, spec, target, dtype)


def save_model(loaded: LoadedModel, folder: str | Path, **options: Any) -> Path:
    """Write ``loaded`` as a folder ``load_model`` reads back (its family's format); return the folder.

    For open_clip models: ``base_weights`` (prefix -> location of frozen towers kept outside the folder; default
    those it was loaded with) and ``dtype`` (stored weight type, e.g. ``torch.float16``). A training manifest in
    the folder the model was loaded from (``training_manifest.json.gz``) is copied along, so the saved model can
    still be checked for contamination.
    """
    import shutil

    from openmedclip.train.manifest import find_manifest

    saved = loaded.family.save(loaded, Path(folder).expanduser(), **options)
    manifest = find_manifest(loaded.spec.folder)
    if manifest is not None and manifest.parent.resolve() != saved.resolve():
        shutil.copyfile(manifest, saved / manifest.name)
    return saved


def _family_for(name_or_path: str | Path) -> tuple[ModelFamily, Any]:
    """The family that reads ``name_or_path`` and, for a registry name, its entry."""
    entries = registry()  # also loads the built-in families
    if isinstance(name_or_path, str) and name_or_path in entries:
        entry = entries[name_or_path]
        return get_family(entry.family), entry
    if isinstance(name_or_path, str):
        for family in FAMILIES.values():
            if name_or_path in family.architectures():
                return family, None
    path = Path(name_or_path).expanduser()
    if path.exists():
        for family in FAMILIES.values():
            if family.recognises(path):
                return family, None
        # No family claims it: open_clip's (the hub format) says what its files should look like.
        return get_family(FALLBACK_FAMILY), None
    raise ModelLoadError(name_or_path, unknown_name_message(str(name_or_path)),
                         unknown_name_message(str(name_or_path), "'openmedclip models --names'"))


def unknown_name_message(name: str, lister: str = "openmedclip.models.list_models()") -> str:
    """Why ``name`` names no model, with close matches and where the full list is (``lister``)."""
    names = list_models()
    by_lower = {candidate.lower(): candidate for candidate in names}
    close = [by_lower[match] for match in difflib.get_close_matches(name.lower(), list(by_lower), n=5, cutoff=0.6)]
    suggestion = f" Close matches: {', '.join(close)}." if close else ""
    return (
        "unknown model: not a registry name, an architecture, or an existing file or folder."
        f"{suggestion} {lister} lists all {len(names)} names."
    )
