"""`TrainConfig`: every option of a training run, read from a YAML recipe plus ``key=value`` overrides."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
    with_config,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from openmedclip.errors import InvalidInputError
from openmedclip.precision import TrainPrecision
from openmedclip.schemas import FileModel, describe_error
from openmedclip.yaml_text import safe_load

LossName = Literal["infonce", "siglip"]
LOSS_NAMES: tuple[str, ...] = get_args(LossName)


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "Input should be a valid number")
    return value


def _path_text(value: Any) -> Any:
    return str(value) if isinstance(value, PurePath) else value


Number = Annotated[float, BeforeValidator(_no_bool)]
"""A float; ints and numeric strings (``"3e-5"``, which YAML reads as a string) convert, true/false do not."""
PathText = Annotated[str, BeforeValidator(_path_text)]
"""A string; `pathlib` paths convert."""


@with_config(ConfigDict(extra="forbid", use_attribute_docstrings=True))
class CaptionOptions(TypedDict, total=False):
    """How samples without captions get one (see `TrainConfig.captions`)."""

    bank: str | None
    """Sentence bank (built-in name or YAML path) whose sentences caption each sample's labels."""
    normal_class: str | None
    """Bank class for samples without labels (default: the bank's "No Finding" or "normal" class)."""
    from_fields: StrictBool
    """Build captions from the modality, organ and question–answer metadata (VQA-RAD)."""
    max_qa: Annotated[StrictInt, Field(ge=0)]
    """Question–answer pairs per caption with `from_fields` (default 2)."""
    shared: StrictBool
    """Give every sample of a class the same bank sentence at a step (a new one each step) instead of one per
    sample, so that pairs of one class are not each other's negatives (see `openmedclip.train.losses`)."""
    modality: str
    """Modality of the samples (a `modality` bank class, e.g. ``X-ray``): half of their bank captions start with
    a header naming it (and `organ`), e.g. "Radiograph of the chest."."""
    organ: str
    """Organ or body part for that header, e.g. ``chest``."""
    header_alone: Annotated[Number, Field(ge=0, le=1)]
    """Share of bank captions that are that header alone (default 0; half of the others start with it)."""


@with_config(ConfigDict(extra="allow", use_attribute_docstrings=True))
class DataSourceSpec(TypedDict, total=False):
    """An `openmedclip.data.open_source` spec (``type``, ``path``, ... are checked there) with three training keys."""

    weight: Annotated[Number, Field(ge=0)]
    """This source's share of an epoch (give one to every source or to none)."""
    captions: CaptionOptions
    """Caption options for this source, replacing the recipe's `captions`."""
    flip: StrictBool
    """Let `augment` flip this source's images left to right (half of the time, never when the caption names a
    side): only for images without a meaningful left and right, e.g. fundus photographs or breast ultrasound;
    never chest X-ray, CT or MR."""


class TrainConfig(FileModel):
    """A training run. Batch sizes are per process; one optimizer step sees
    ``batch_size * grad_accum * world_size`` pairs. Invalid options raise `InvalidInputError`."""

    model: PathText
    """Anything `openmedclip.models.load_model` accepts: registry name, hub-format folder, open_clip architecture."""
    datasets: Annotated[list[DataSourceSpec], Field(min_length=1)]
    """`openmedclip.data.open_source` specs; an optional ``weight`` sets each source's share of an epoch.
    Relative paths are taken from the working directory."""
    checkpoint: PathText | None = None
    """Weights for an architecture given as `model` (``load_model(model, checkpoint=...)``)."""
    epoch_size: Annotated[StrictInt, Field(ge=1)] | None = None
    """Pairs per epoch (default: the sum of the sources' sizes)."""
    val_datasets: list[dict[str, Any]] = Field(default_factory=list)
    """Image–text sources for retrieval validation (R@1/5/10 both ways), one result per source."""
    captions: CaptionOptions = Field(default_factory=CaptionOptions)
    """How samples without captions get one: ``{bank: <name or yaml>, normal_class: ...}`` captions their labels
    with bank sentences; ``{from_fields: true, max_qa: 2}`` builds one from modality, organ and question–answer
    metadata (VQA-RAD). A dataset spec may carry its own ``captions`` mapping, which replaces this one for it."""
    epochs: Annotated[StrictInt, Field(ge=1)] = 1
    max_steps: Annotated[StrictInt, Field(ge=1)] | None = None
    """Stop after this many optimizer steps in all (the schedule still spans `epochs`)."""
    batch_size: Annotated[StrictInt, Field(ge=1)] = 32
    grad_accum: Annotated[StrictInt, Field(ge=1)] = 1
    """Micro-batches per optimizer step; the loss sees all of them at once (see `openmedclip.train.step`)."""
    lr: Annotated[Number, Field(gt=0)] = 1e-5
    weight_decay: Number = 0.2
    warmup_steps: Annotated[StrictInt, Field(ge=0)] = 0
    precision: TrainPrecision = "fp32"
    """fp32, bf16 (autocast, CPU or GPU), fp16 (autocast + GradScaler, GPU only) or auto (the device's default:
    bf16 on a CPU with AVX-512 BF16 or AMX, fp32 on other CPUs, bf16 or fp16 on a GPU); weights stay fp32."""
    grad_checkpointing: StrictBool = False
    lock_image: StrictBool | Annotated[StrictInt, Field(ge=0)] = False
    """True freezes the image tower; an int N leaves its last N layer groups trainable (open_clip's groups,
    from the end: the projection; the last block with the final norm; each earlier block; the embeddings)."""
    lock_text: StrictBool | Annotated[StrictInt, Field(ge=0)] = False
    """True freezes the text tower; an int N leaves its last N layer groups trainable (as for `lock_image`)."""
    loss: LossName = "infonce"
    """``infonce`` (CLIP) or ``siglip``. With shared class captions (``captions: {shared: true}``) InfoNCE's
    targets are label-aware: every pair of the batch with the same dataset and class is a positive."""
    gather_features: StrictBool = True
    """With several processes, use all processes' pairs as negatives (same result as one big batch)."""
    augment: StrictBool = False
    """Random crops (80–100 % of the area) before the model's preprocessing, and left–right flips for datasets
    with ``flip: true``, seeded per sample and epoch."""
    seed: StrictInt = 0
    device: str | None = None
    """``cpu``, ``cuda``, ``cuda:1``...; default: the process's GPU when there is one, else the CPU."""
    num_workers: Annotated[StrictInt, Field(ge=0)] = 0
    val_every: Annotated[StrictInt, Field(ge=0)] = 1
    """Validate every this many epochs (0: never)."""
    out_dir: PathText = "runs/train"
    log_file: PathText = "log.jsonl"
    """JSON-lines log, relative to `out_dir`."""
    keep_checkpoints: Annotated[StrictInt, Field(ge=0)] = 2
    manifest: StrictBool = True
    """Write ``training_manifest.json.gz`` (the decoded pixel hash of every training image, see
    `openmedclip.train.manifest`) into each checkpoint, for contamination checks; costs one read of the data."""
    resume: StrictBool = False
    """Continue from ``out_dir``'s latest checkpoint (start afresh when there is none)."""
    max_bad_items: Annotated[StrictInt, Field(ge=0)] | None = 100
    """Unreadable training items (truncated, empty or corrupt images) to leave out, each logged and counted once,
    before the run checkpoints its last step and stops with an error (0: stop at the first; null: never stop)."""
    progress: StrictBool = True

    @field_validator("lock_image", "lock_text", mode="before")
    @classmethod
    def _lock(cls, value: Any) -> Any:
        if isinstance(value, bool) or (isinstance(value, int) and value >= 0):
            return value
        raise PydanticCustomError("lock", "must be true/false or a number of unlocked layers >= 0")

    @model_validator(mode="wrap")
    @classmethod
    def _one_line_error(cls, data: Any, handler: ModelWrapValidatorHandler[TrainConfig]) -> TrainConfig:
        """Problems raise `InvalidInputError` naming the first one, e.g. ``recipe: lr: expected a number``."""
        try:
            return handler(data)
        except ValidationError as err:
            raise InvalidInputError(f"recipe: {describe_error(err, cls)}") from None

    def to_dict(self) -> dict[str, Any]:
        """Every option as plain data (lists and dicts copied)."""
        return self.model_dump()


def load_recipe(path: str | Path | None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """A `TrainConfig` from a YAML recipe (or none) with `overrides` applied on top.

    Override keys may be dotted (``datasets.0.path``, ``captions.bank``); string values are read as YAML
    (``"3"`` -> 3, ``"true"`` -> True, ``"[a, b]"`` -> a list), so command-line ``--key value`` pairs work as is.
    Problems raise `InvalidInputError` naming the file and the option, e.g.
    ``r.yaml: recipe: datasets.0.captions.bankk: unknown key (did you mean 'bank'?)``.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InvalidInputError(f"{path}: recipe not found")
        try:
            data = safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise InvalidInputError(f"{path}: not valid YAML ({err})") from None
        if not isinstance(data, dict):
            raise InvalidInputError(f"{path}: a recipe must be a mapping of options")
    for key, value in (overrides or {}).items():
        _set_dotted(data, key.replace("-", "_"), safe_load(value) if isinstance(value, str) else value)
    try:
        return TrainConfig.model_validate(data)
    except InvalidInputError as err:
        if path is None:
            raise
        raise InvalidInputError(f"{path}: {err}") from None


def _set_dotted(data: Any, key: str, value: Any) -> None:
    """Set ``data[a][b]...`` for key ``a.b...``; integer parts index lists, missing mappings are created."""
    *parents, last = key.split(".")
    node = data
    for part in parents:
        node = _child(node, part, key)
    if isinstance(node, list):
        node[_list_index(node, last, key)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise InvalidInputError(f"override {key!r}: {'.'.join(parents)} is not a mapping or list")


def _child(node: Any, part: str, key: str) -> Any:
    if isinstance(node, list):
        return node[_list_index(node, part, key)]
    if not isinstance(node, dict):
        raise InvalidInputError(f"override {key!r}: cannot go into {part!r}")
    return node.setdefault(part, {})


def _list_index(items: list, part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(items):
        raise InvalidInputError(f"override {key!r}: {part!r} is not an index of a list of {len(items)}")
    return int(part)
