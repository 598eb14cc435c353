"""Prompt templates: sentence patterns with one ``{}`` slot for a class name."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidInputError

TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "single": ("{}",),
    "medical": (
        "a medical image showing {}.",
        "a radiology image of {}.",
        "an image of {}.",
        "{}.",
        "a photo of {}.",
    ),
    "chest_xray": (
        "a chest X-ray showing {}.",
        "a chest radiograph with {}.",
        "frontal chest X-ray demonstrating {}.",
        "{} on chest X-ray.",
    ),
    "photo_of": ("this is a photo of {}",),  # BiomedCLIP's model card
    "radiology_findings": (  # BioViL's zero-shot test prompts
        "Findings consistent with {}",
        "Findings suggesting {}",
        "This opacity can represent {}",
        "Findings are most compatible with {}",
    ),
    "ct": ("a CT scan showing {}.", "an axial CT image of {}.", "computed tomography demonstrating {}."),
    "mri": ("an MRI scan showing {}.", "a magnetic resonance image of {}.", "MR imaging demonstrating {}."),
    "ultrasound": ("an ultrasound image showing {}.", "a sonographic image of {}."),
    "fundus": ("a retinal fundus photograph showing {}.", "a fundus image with {}."),
    "modality": ("a {} image.", "this is a {} scan.", "a medical image acquired with {}."),
}
"""Built-in template sets, by name. ``medical`` is the default for zero-shot classification."""

DEFAULT_TEMPLATE_SET = "medical"


def resolve_templates(templates: str | Sequence[str] | None) -> list[str]:
    """Turn a set name, a single template, a list of templates or ``None`` into a checked list.

    A string that names a built-in set gives that set; any other string is one template. Every template
    must contain exactly one ``{}`` slot.
    """
    if templates is None:
        chosen: Sequence[str] = TEMPLATE_SETS[DEFAULT_TEMPLATE_SET]
    elif isinstance(templates, str):
        chosen = TEMPLATE_SETS.get(templates, (templates,))
    else:
        chosen = list(templates)
    if not chosen:
        raise InvalidInputError("no prompt templates given")
    for template in chosen:
        if template.count("{}") != 1:
            raise InvalidInputError(
                f"prompt template {template!r} must contain exactly one '{{}}' slot for the class name "
                f"(or name a built-in set: {', '.join(sorted(TEMPLATE_SETS))})"
            )
    return list(chosen)


def fill_templates(templates: Sequence[str], class_name: str) -> list[str]:
    """The prompts for one class: every template with the class name in its slot."""
    return [template.replace("{}", class_name) for template in templates]
