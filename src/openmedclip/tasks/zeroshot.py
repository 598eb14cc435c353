"""Zero-shot classification with text prompts.

Multi-class: each class is described by several sentences (templates × class name, or a per-class sentence list);
its text embedding is the re-normalised mean of the normalised sentence embeddings, and class probabilities are the
softmax of the model's logit scale times the cosine similarities.

Multi-label (CheXzero style): each label has a positive and a negative prompt set; the probability of the label is
the softmax over the (positive, negative) pair of scaled similarities. Labels may bring their own pair, so a label
such as "No Finding" is never negated into "no No Finding".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from ..embed import EncodedImages, ImageItem, ItemError, encode_images, encode_texts
from ..embed.text_cache import cached_text_features
from ..errors import InvalidInputError
from ..metrics import multiclass_metrics, multilabel_metrics
from ..metrics.results import json_float
from ..models.ensemble import member_similarities, normalize_members
from ..models.loaded import LoadedModel
from ..prompts import (
    TEMPLATE_SETS,
    SentenceBank,
    bank_for_labels,
    fill_templates,
    find_class,
    list_banks,
    load_bank,
    resolve_templates,
)
from .records import multiclass_fields, put_estimate, roc_curves
from .registry import TaskInputs, TaskRecord, TaskSpec, register_task

Labels = Union[Sequence[str], Mapping[str, Sequence[str]]]
"""Class names (combined with templates) or a mapping of class name to its own sentences."""

Pairs = Mapping[str, tuple[Union[str, Sequence[str]], Union[str, Sequence[str]]]]
"""Per-label (positive, negative) prompts for multi-label classification; each side a sentence or a list."""

_NEGATED_PREFIXES = ("no ", "not ", "without ")
_NEGATIVE_LABELS = {"normal", "no finding", "healthy", "none"}


@dataclass(frozen=True)
class Prediction:
    """The verdict for one image: the chosen label(s) and the probability of every label."""

    item: str
    labels: list[str]
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.item, "labels": self.labels, "probabilities": self.probabilities}


@dataclass
class ZeroShotResult:
    """Probabilities for every readable image (rows) and label (columns), plus the items that failed."""

    mode: str
    labels: list[str]
    items: list[str]
    probabilities: np.ndarray
    """``[N, C]`` float32: softmax rows for ``multiclass``, independent P(label) for ``multilabel``."""
    prompts: dict[str, Any]
    errors: list[ItemError] = field(default_factory=list)
    threshold: float = 0.5
    bank: str | None = None
    """The sentence bank the class prompts came from, if any."""

    def predictions(self) -> list[Prediction]:
        """One prediction per image: the arg-max class, or every label above ``threshold`` for multi-label."""
        results = []
        for item, row in zip(self.items, self.probabilities):
            probabilities = {label: round(float(p), 6) for label, p in zip(self.labels, row)}
            if self.mode == "multiclass":
                chosen = [self.labels[int(np.argmax(row))]]
            else:
                chosen = [label for label, p in zip(self.labels, row) if p >= self.threshold]
            results.append(Prediction(item, chosen, probabilities))
        return results

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "labels": self.labels,
            "threshold": self.threshold if self.mode == "multilabel" else None,
            "predictions": [prediction.to_dict() for prediction in self.predictions()],
            "errors": [error.to_dict() for error in self.errors],
            "bank": self.bank,
            "prompts": self.prompts,
        }


def _as_bank(bank: str | SentenceBank | None) -> SentenceBank | None:
    return load_bank(bank) if isinstance(bank, (str, Path)) else bank


def class_prompts(
    labels: Labels, templates: str | Sequence[str] | None = None, bank: str | SentenceBank | None = None
) -> dict[str, list[str]]:
    """Sentences per class: a mapping is used as given; with a sentence bank each name (or alias) takes the
    bank's sentences; otherwise plain names are combined with the templates."""
    bank = _as_bank(bank)
    if isinstance(labels, Mapping):
        prompts = {str(name): [str(s) for s in sentences] for name, sentences in labels.items()}
        empty = [name for name, sentences in prompts.items() if not sentences]
        if empty:
            raise InvalidInputError(f"no sentences given for class(es): {', '.join(empty)}")
    elif bank is not None:
        prompts = {name: bank.sentences(name) for name in labels}
    else:
        chosen = resolve_templates(templates)
        prompts = {name: fill_templates(chosen, name) for name in labels}
    if not prompts:
        raise InvalidInputError("no class labels given")
    if len(prompts) != len(labels):
        raise InvalidInputError("class labels must be unique")
    return prompts


def _as_list(prompts: str | Sequence[str]) -> list[str]:
    return [prompts] if isinstance(prompts, str) else list(prompts)


def _bank_pair(label: str, bank: SentenceBank | None) -> tuple[str, str] | None:
    """The label's (positive, negative) phrase from the given bank, else from the first built-in bank with one."""
    if bank is not None:
        return bank.pairs.get(bank.resolve(label))
    for ref in find_class(label):
        pair = load_bank(ref.bank).pairs.get(ref.class_name)
        if pair:
            return pair
    return None


def label_pairs(
    labels: Sequence[str],
    pairs: Pairs | None = None,
    templates: str | Sequence[str] | None = "single",
    bank: str | SentenceBank | None = None,
) -> dict[str, tuple[list[str], list[str]]]:
    """Positive and negative prompts per label for multi-label classification.

    In order of precedence: a pair in ``pairs`` is used exactly as given; a pair phrase from ``bank`` (or, without
    a bank, from the built-in bank that knows the label, e.g. "No Finding" in ``chest_xray``) is filled into the
    templates; otherwise the templates are filled with the label (positive) and ``"no <label>"`` (negative). A label
    that is itself a negation or a normal finding (e.g. "normal") has no automatic negative and must bring a pair.
    The default template set ``single`` uses the phrases bare, as CheXzero does.
    """
    chosen = resolve_templates(templates)
    pairs = pairs or {}
    bank = _as_bank(bank)
    result: dict[str, tuple[list[str], list[str]]] = {}
    for label in labels:
        if label in pairs:
            positive, negative = pairs[label]
            result[label] = (_as_list(positive), _as_list(negative))
            continue
        phrase = _bank_pair(label, bank)
        if phrase:
            result[label] = (fill_templates(chosen, phrase[0]), fill_templates(chosen, phrase[1]))
            continue
        lowered = label.strip().lower()
        if lowered in _NEGATIVE_LABELS or lowered.startswith(_NEGATED_PREFIXES):
            raise InvalidInputError(
                f"label '{label}' cannot be negated automatically; give it a (positive, negative) prompt pair"
            )
        result[label] = (fill_templates(chosen, label), fill_templates(chosen, f"no {label}"))
    if not result:
        raise InvalidInputError("no labels given")
    return result


def text_classifier(loaded: LoadedModel, prompts: Mapping[str, Sequence[str]]) -> torch.Tensor:
    """``[C, D]`` class embeddings: the re-normalised mean of each class's normalised sentence embeddings (per
    member, for an ensemble). Sentence features are cached per model and sentence list
    (:mod:`openmedclip.embed.text_cache`)."""
    sentences = [sentence for group in prompts.values() for sentence in group]
    features = cached_text_features(loaded, sentences, lambda: encode_texts(loaded, sentences))
    sizes = [len(group) for group in prompts.values()]
    means = torch.stack([chunk.mean(dim=0) for chunk in torch.split(features, sizes)])
    return normalize_members(means, loaded.ensemble_size)


def _image_features(
    loaded: LoadedModel, images: Sequence[ImageItem] | EncodedImages, **encode_options: Any
) -> EncodedImages:
    if isinstance(images, EncodedImages):
        return images
    if len(images) == 0:
        raise InvalidInputError("no images given")
    return encode_images(loaded, images, **encode_options)


def _similarity(encoded: EncodedImages, text_features: torch.Tensor, members: int) -> torch.Tensor:
    """``[members, N, C]`` image–text similarities per ensemble member; ``N`` is 0 when no image could be read."""
    if not encoded.indices:
        return torch.empty(members, 0, text_features.shape[0])
    return member_similarities(encoded.features, text_features, members)


def _family_scores(
    model: LoadedModel, images: Sequence[ImageItem] | EncodedImages, groups: Sequence[Sequence[str]], kind: str,
    **encode_options: Any,
) -> tuple[EncodedImages, list[torch.Tensor]]:
    """Images scored against every sentence by the family's ``kind`` of similarity; per group of sentences the
    ``[N]`` best score (GLoRIA takes a class's best prompt)."""
    kinds = model.family.similarity_kinds
    if kind not in kinds:
        raise InvalidInputError(f"similarity '{kind}': {model.spec.name} offers {', '.join(kinds)}")
    if isinstance(images, EncodedImages):
        raise InvalidInputError(f"similarity '{kind}' scores images, not encoded features")
    if len(images) == 0:
        raise InvalidInputError("no images given")
    tokens = model.tokenizer([sentence for group in groups for sentence in group]).to(model.device)

    def score(pixels: torch.Tensor) -> torch.Tensor:
        return model.family.similarity(model.model, pixels, tokens, kind)

    encoded = encode_images(model, images, encode=score, **encode_options)
    if not encoded.indices:
        return encoded, [torch.empty(0) for _ in groups]
    columns = torch.split(encoded.features, [len(group) for group in groups], dim=1)
    return encoded, [column.max(dim=1).values for column in columns]


def recommended_prompts(model: LoadedModel, labels: Sequence[str]) -> tuple[str | None, SentenceBank | None]:
    """The model's recommended template set, or its sentence bank when the bank knows every label; (None, None)
    when it recommends none (see ``RegistryEntry.prompts``)."""
    from ..models.registry import registry

    entry = registry().get(model.spec.name)
    name = entry.prompts if entry is not None else ""
    if name in TEMPLATE_SETS:
        return name, None
    if name in list_banks():
        bank = load_bank(name)
        try:
            for label in labels:
                bank.resolve(label)
        except InvalidInputError:
            return None, None
        return None, bank
    return None, None


def check_labels(labels: Labels, *, multilabel: bool = False) -> None:
    """Raise ``InvalidInputError`` unless ``labels`` is a list (or mapping) of distinct, non-empty names, at least
    two for multi-class (one class always gets probability 1). Names differing only in case or spacing count as
    the same."""
    if isinstance(labels, str):
        example = [part.strip() for part in labels.split(",") if part.strip()]
        raise InvalidInputError(f"labels must be a list of names, not one string ({labels!r}); e.g. {example}")
    names = [str(name) for name in labels]
    if any(not name.strip() for name in names):
        raise InvalidInputError("a class label is empty")
    first: dict[str, str] = {}
    repeated = []
    for name in names:
        key = " ".join(name.split()).casefold()
        if key in first:
            repeated.append(f"{first[key]!r} and {name!r}")
        first.setdefault(key, name)
    if repeated:
        raise InvalidInputError(f"class labels must be distinct (ignoring case and spacing): {'; '.join(repeated)}")
    if not multilabel and len(names) < 2:
        raise InvalidInputError(
            f"multi-class zero-shot needs at least two labels, got {names}: a single class always gets probability "
            "1 (for a yes/no decision on one finding, use multi-label)"
        )


def zero_shot(
    model: LoadedModel | str,
    images: Sequence[ImageItem] | EncodedImages,
    labels: Labels,
    *,
    templates: str | Sequence[str] | None = None,
    multilabel: bool = False,
    pairs: Pairs | None = None,
    bank: str | SentenceBank | None = None,
    threshold: float = 0.5,
    similarity: str = "global",
    **encode_options: Any,
) -> ZeroShotResult:
    """Classify images with text prompts.

    ``model`` is a ``LoadedModel`` or anything ``load_model`` accepts. ``images`` are paths, PIL images,
    ``MedicalImage`` objects or already-encoded features. ``bank`` (a built-in sentence bank name, a bank YAML
    path or a ``SentenceBank``) supplies each class's sentences, or each label's prompt pair with ``multilabel``.
    Without ``bank`` and ``templates``, a published model's recommended prompts are used (its registry entry's
    template set, or its sentence bank where that knows every label); otherwise multi-class labels that one
    built-in bank names (e.g. "normal, pneumonia") take that bank's sentences, as the built-in model was trained
    on; otherwise ``templates`` defaults to the ``medical`` set for multi-class and to bare phrases for
    multi-label. ``similarity`` other than 'global' (the cosine of pooled features) is a family's own pair score,
    e.g. GLoRIA's word–region 'local' or 'both': a class then scores its best sentence. ``encode_options`` go to
    ``encode_images`` (``batch_size``, ``num_workers``, ``read_options``, ``progress``).
    """
    check_labels(labels, multilabel=multilabel)
    if isinstance(model, str):
        from ..models.load import load_model

        model = load_model(model)
    scale = model.zero_shot_scale
    bank_name = None
    if templates is None and bank is None and not isinstance(labels, Mapping):
        templates, bank = recommended_prompts(model, list(labels))
    if multilabel:
        if isinstance(labels, Mapping):
            raise InvalidInputError("multi-label classification takes label names and optional prompt pairs")
        prompt_pairs = label_pairs(list(labels), pairs, templates or "single", bank)
        if similarity != "global":
            groups = [side for pos, neg in prompt_pairs.values() for side in (pos, neg)]
            encoded, best = _family_scores(model, images, groups, similarity, **encode_options)
            difference = torch.stack([best[i] - best[i + 1] for i in range(0, len(best), 2)], dim=-1)
            probabilities = torch.sigmoid(scale * difference.reshape(len(encoded.indices), len(prompt_pairs)))
        else:
            positive = text_classifier(model, {label: pos for label, (pos, _) in prompt_pairs.items()})
            negative = text_classifier(model, {label: neg for label, (_, neg) in prompt_pairs.items()})
            encoded = _image_features(model, images, **encode_options)
            scores = _similarity(encoded, positive - negative, model.ensemble_size)
            probabilities = torch.sigmoid(scale * scores).mean(dim=0)
        prompts: dict[str, Any] = {label: {"positive": p, "negative": n} for label, (p, n) in prompt_pairs.items()}
    else:
        if bank is None and templates is None and not isinstance(labels, Mapping):
            bank = bank_for_labels(list(labels))
        bank = _as_bank(bank)
        bank_name = bank.name if bank is not None and not isinstance(labels, Mapping) else None
        prompts = class_prompts(labels, templates, bank)
        if similarity != "global":
            encoded, best = _family_scores(model, images, list(prompts.values()), similarity, **encode_options)
            scores = torch.stack(best, dim=-1).reshape(len(encoded.indices), len(prompts))
            probabilities = torch.softmax(scale * scores, dim=-1)
        else:
            classifier = text_classifier(model, prompts)
            encoded = _image_features(model, images, **encode_options)
            scores = _similarity(encoded, classifier, model.ensemble_size)
            probabilities = torch.softmax(scale * scores, dim=-1).mean(dim=0)
    return ZeroShotResult(
        mode="multilabel" if multilabel else "multiclass",
        labels=list(prompts),
        items=encoded.items,
        probabilities=probabilities.numpy().astype(np.float32),
        prompts=prompts,
        errors=encoded.errors,
        threshold=threshold,
        bank=bank_name,
    )


def zeroshot_record(inputs: TaskInputs) -> TaskRecord:
    """Zero-shot classification of the test features; targets are class indices ``[N]`` or, multi-label, a 0/1
    matrix ``[N, C]`` over the class names."""
    features, targets, class_names, prompts = inputs.features, inputs.targets, inputs.class_names, inputs.prompts
    multilabel, n_bootstrap = inputs.multilabel, inputs.n_bootstrap
    sentences = prompts.get("sentences")
    if sentences is not None:
        missing = [c for c in class_names if c not in sentences]
        if missing:
            raise InvalidInputError(f"prompts: no sentences for class(es) {missing}")
        labels: Any = {c: sentences[c] for c in class_names}
    else:
        labels = class_names
    encoded = EncodedImages(features, list(range(len(features))), [str(i) for i in range(len(features))])
    result = zero_shot(
        inputs.loaded,
        encoded,
        labels,
        templates=prompts.get("templates"),
        bank=prompts.get("bank"),
        multilabel=multilabel,
        pairs=prompts.get("pairs"),
    )
    probs = result.probabilities.astype(np.float64)
    plots: dict[str, Any] = {"class_names": class_names, "roc": roc_curves(targets, probs, class_names)}
    details: dict[str, Any] = {"mode": result.mode, "prompts": result.prompts}
    if multilabel:
        ml = multilabel_metrics(targets, probs, class_names, n_bootstrap=n_bootstrap, groups=inputs.groups)
        metrics: dict = {}
        ci: dict = {}
        put_estimate(metrics, ci, "mean_auroc", ml.mean_auroc)
        put_estimate(metrics, ci, "mean_auprc", ml.mean_auprc)
        metrics |= {"mean_f1": json_float(ml.mean_f1), "mean_mcc": json_float(ml.mean_mcc)}
        details["metrics"] = ml.to_dict()
    else:
        mc = multiclass_metrics(targets, probs, class_names, n_bootstrap=n_bootstrap, groups=inputs.groups)
        metrics, ci = multiclass_fields(mc)
        for name, estimate in mc.positive_class.items():  # two classes: the positive class's precision, recall, F1
            put_estimate(metrics, ci, name, estimate)
        details["metrics"] = mc.to_dict()
        plots["confusion_matrix"] = mc.confusion_matrix.astype(int).tolist()
    return TaskRecord(ZEROSHOT.benchmark_name, len(targets), metrics, ci, details, plots)


ZEROSHOT = register_task(
    TaskSpec(
        name="zeroshot",
        benchmark_name="zeroshot_classification",
        title="Zero-shot classification",
        needs=frozenset({"labels"}),
        build_record=zeroshot_record,
        headline=("acc1", "auroc", "mean_auroc"),
        plots=("roc", "confusion"),
    )
)
