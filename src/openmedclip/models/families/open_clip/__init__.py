"""The open_clip family: OpenAI CLIP, BiomedCLIP, openmedclip's own models and any open_clip architecture.

Files: the open_clip hub folder (``open_clip_config.json`` + ``open_clip_model.safetensors``, BiomedCLIP's
layout), a bare checkpoint of a named architecture, or an architecture ``.json`` to start training from.
Heavy libraries (torch, open_clip, transformers) are imported only when a model is built.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from openmedclip.models.families.open_clip import entries  # noqa: F401 - registers the family's entries
from openmedclip.models.families.open_clip.catalog import architectures
from openmedclip.models.families.open_clip.config import OpenClipConfig
from openmedclip.models.family import ModelFamily, Preprocess, Resolved, Tokenizer, register_family

if TYPE_CHECKING:
    import torch

    from openmedclip.models.loaded import LoadedModel
    from openmedclip.models.protocol import ClipModel
    from openmedclip.models.registry import RegistryEntry


OPENAI_SCALARS = frozenset({"input_resolution", "context_length", "vocab_size"})
"""Non-weight entries of OpenAI's TorchScript archives (metadata, not parameters of the model)."""


def _renamed(key: str, renames: dict[str, str]) -> str:
    for old, new in renames.items():
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def _native(resolved: Resolved, name: str) -> bool:
    """Whether ``resolved`` is built from the plain-torch modules (:mod:`.native`)."""
    if resolved.runtime == "library":
        return False
    from openmedclip.models.families.open_clip import native

    return native.applies(resolved, name)


def _is_native(model: torch.nn.Module) -> bool:
    from openmedclip.models.families.open_clip.native.model import NativeClip

    return isinstance(model, NativeClip)


@register_family
class OpenClipFamily(ModelFamily):
    """Models built with open_clip's classes (CLIP, CustomTextCLIP, CoCa) from an open_clip model config."""

    name: ClassVar[str] = "open_clip"
    config_type: ClassVar[type] = OpenClipConfig
    tolerated_keys: ClassVar[frozenset[str]] = frozenset(
        {
            # Buffers of Hugging Face BERT-style text towers, saved in checkpoints written with older transformers
            # (BiomedCLIP's among them); recomputed on build. Versions that keep them as non-persistent buffers are
            # covered by the strict loader already; these names also cover versions without the buffers.
            "text.transformer.embeddings.position_ids",
            "text.transformer.embeddings.token_type_ids",
        }
    )

    def architectures(self) -> list[str]:
        return architectures()

    def recognises(self, path: Path) -> bool:
        from openmedclip.models.families.open_clip.hub_folder import CONFIG_FILE

        folder = path if path.is_dir() else path.parent
        return (folder / CONFIG_FILE).is_file() or (path.is_file() and path.suffix.lower() == ".json")

    def describe_entry(self, entry: RegistryEntry) -> str:
        settings = entry.config
        if settings.architecture:
            quick = " (QuickGELU)" if settings.model_overrides.get("quick_gelu") else ""
            return settings.architecture + quick
        if settings.model_cfg:
            vision, text = settings.model_cfg["vision_cfg"], settings.model_cfg["text_cfg"]
            size = {768: "B", 1024: "L"}.get(vision.get("width", 0), f"w{vision.get('width')}")
            image = f"ViT-{size}/{vision.get('patch_size')} {vision.get('image_size')} px"
            tower = str(text.get("hf_model_name", "open_clip text")).split("/")[-1]
            return f"{image} + {tower.removeprefix('BiomedNLP-').removesuffix('-uncased-abstract')}"
        return "as its open_clip_config.json says"

    def examples(self) -> list[Resolved]:
        text = {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
        vit = {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8}
        cnn = {"timm_model_name": "resnet10t", "timm_model_pretrained": False, "timm_pool": "avg",
               "timm_proj": "linear", "image_size": 64}
        return [
            Resolved(self.name, OpenClipConfig({"embed_dim": 16, "vision_cfg": vision, "text_cfg": text}, {}),
                     f"example-{kind}", "open_clip-arch", None)
            for kind, vision in (("vit", vit), ("timm-cnn", cnn))
        ]

    def resolve(
        self, name_or_path: str | Path, *, checkpoint: Path | None, entry: RegistryEntry | None
    ) -> Resolved:
        from openmedclip.models.families.open_clip import locate

        if entry is not None:
            return locate.resolve_entry(entry, checkpoint)
        if isinstance(name_or_path, str) and name_or_path in architectures():
            return locate.resolve_architecture(name_or_path, checkpoint)
        return locate.resolve_path(Path(name_or_path).expanduser(), str(name_or_path), checkpoint)

    def build(self, resolved: Resolved, *, name: str) -> torch.nn.Module:
        if _native(resolved, name):
            from openmedclip.models.families.open_clip import native

            return native.build_model(resolved, name)
        from openmedclip.models.families.open_clip.build import build_model

        return build_model(resolved.config.model_cfg, folder=resolved.folder, name=name)

    def convert_state_dict(self, state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Known, lossless conversions: OpenAI's TorchScript scalar entries dropped, pre-2.0 open_clip text keys
        renamed, scalar vs 1-element ``logit_scale`` reshaped. Partly-fp16 weights are cast when copied."""
        import torch

        expected = model.state_dict()
        state = {key: value for key, value in state.items() if key in expected or key not in OPENAI_SCALARS}
        if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
            from open_clip.model import convert_to_custom_text_state_dict

            state = convert_to_custom_text_state_dict(state)
        for key in ("logit_scale", "logit_bias"):
            target = getattr(model, key, None)
            if key in state and isinstance(target, torch.Tensor) and state[key].numel() == target.numel():
                state[key] = state[key].reshape(target.shape)
        return state

    def load_weights(self, model: torch.nn.Module, resolved: Resolved, *, name: str) -> None:
        from openmedclip.models.checkpoint import read_base_weights, read_state_dict
        from openmedclip.models.strict import load_base_only, load_strict

        config: OpenClipConfig = resolved.config
        base = read_base_weights(config.base_weights, name, model.state_dict()) if config.base_weights else {}
        if resolved.weights is not None:
            read = read_state_dict(resolved.weights, name)
            state = {**base, **{_renamed(key, config.key_renames): value for key, value in read.items()}}
            state = self.convert_state_dict(state, model)
            load_strict(model, state, name=name, source=resolved.weights, tolerated=self.tolerated_keys)
        elif config.base_weights:
            load_base_only(model, base, config.base_weights, tolerated=self.tolerated_keys)

    def preprocess(self, resolved: Resolved, model: torch.nn.Module) -> tuple[Preprocess, OpenClipConfig]:
        import dataclasses

        config: OpenClipConfig = resolved.config
        preprocess: Preprocess
        if _is_native(model):
            from openmedclip.models.families.open_clip import native

            preprocess, merged = native.build_preprocess(model, config.preprocess_cfg)  # type: ignore[arg-type]
        else:
            from openmedclip.models.families.open_clip.build import build_preprocess

            preprocess, merged = build_preprocess(model, config.preprocess_cfg)
        return preprocess, dataclasses.replace(config, preprocess_cfg=merged, key_renames={})

    def tokenizer(self, resolved: Resolved, *, name: str) -> tuple[Tokenizer, int]:
        if _native(resolved, name):
            from openmedclip.models.families.open_clip import native

            return native.build_tokenizer(resolved, name)
        from openmedclip.models.families.open_clip.build import build_tokenizer

        return build_tokenizer(resolved.config.model_cfg, folder=resolved.folder, name=name)

    def save(self, loaded: LoadedModel, folder: Path, **options: Any) -> Path:
        from openmedclip.models.families.open_clip.save import save_hub_folder

        return save_hub_folder(loaded, folder, **options)

    # -- optional capabilities ----------------------------------------------------------------------------

    def patch_features(self, model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
        if _is_native(model):
            from openmedclip.models.families.open_clip.native.model import patch_features as native_patches

            return native_patches(model, pixels)  # type: ignore[arg-type]
        from openmedclip.models.families.open_clip.patches import patch_features

        return patch_features(model, pixels)

    def lock_towers(self, model: torch.nn.Module, *, image: bool | int, text: bool | int) -> None:
        from openmedclip.errors import InvalidInputError

        if _is_native(model):
            raise InvalidInputError("towers can be locked on a model loaded with load_model(..., runtime='library')")
        for lock, method, argument in (
            (image, "lock_image_tower", "unlocked_groups"),
            (text, "lock_text_tower", "unlocked_layers"),
        ):
            if lock is False:
                continue
            if not hasattr(model, method):
                raise InvalidInputError(f"{type(model).__name__} has no {method}(); cannot lock its tower")
            getattr(model, method)(**{argument: 0 if lock is True else int(lock)})

    def frozen_text_encoder(
        self, model: torch.nn.Module, *, max_entries: int
    ) -> Callable[[torch.Tensor], torch.Tensor] | None:
        if _is_native(model):
            return None
        from openmedclip.models.families.open_clip.text_cache import FrozenTextEncoder

        text = getattr(model, "text", None)
        return FrozenTextEncoder(text, max_entries) if FrozenTextEncoder.applies(text) else None

    def text_pad_id(self, model: torch.nn.Module) -> int | None:
        if _is_native(model):
            return int(model.text.pad_token_id)  # type: ignore[union-attr, arg-type]
        from openmedclip.models.families.open_clip.build import text_pad_id

        return text_pad_id(model)

    def add_logit_bias(self, loaded: LoadedModel, value: float) -> LoadedModel:
        """Give a model without one a SigLIP logit bias, recorded in the config that checkpoints save."""
        import dataclasses

        import torch

        model = loaded.model
        model.logit_bias = torch.nn.Parameter(torch.full_like(cast("ClipModel", model).logit_scale, value))
        config: OpenClipConfig = loaded.spec.config
        config = dataclasses.replace(config, model_cfg={**config.model_cfg, "init_logit_bias": value})
        return dataclasses.replace(loaded, spec=dataclasses.replace(loaded.spec, config=config))
