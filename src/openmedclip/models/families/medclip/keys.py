"""Published key names -> this module's, where the installed transformers names Swin's parameters differently.

transformers 5 renamed the parameters inside each Swin block (``attention.self.query`` -> ``attention.q_proj``,
``intermediate.dense`` -> ``mlp.fc1``, ...) and made ``relative_position_index`` a non-persistent buffer. A key is
renamed only when the model lacks it and has the renamed one, so the published names load under either version.
"""

from __future__ import annotations

import torch

SWIN_PREFIX = "vision_model.model.encoder."
SWIN_RENAMES = (
    (".attention.self.query.", ".attention.q_proj."),
    (".attention.self.key.", ".attention.k_proj."),
    (".attention.self.value.", ".attention.v_proj."),
    (".attention.output.dense.", ".attention.o_proj."),
    (".attention.self.relative_position_bias_table", ".attention.relative_position_bias.relative_position_bias_table"),
    (".attention.self.relative_position_index", ".attention.relative_position_bias.relative_position_index"),
    (".intermediate.dense.", ".mlp.fc1."),
    (".output.dense.", ".mlp.fc2."),
)


def to_module_keys(state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``state`` with published Swin keys renamed to the model's names where they differ."""
    known = set(model.state_dict()) | {key for key, _ in model.named_buffers()}
    return {_module_key(key, known): value for key, value in state.items()}


def _module_key(key: str, known: set[str]) -> str:
    if key in known or not key.startswith(SWIN_PREFIX):
        return key
    for old, new in SWIN_RENAMES:
        if old in key:
            renamed = key.replace(old, new, 1)
            return renamed if renamed in known else key
    return key
