"""No loader ever runs code from a checkpoint: crafted files whose unpickling would create a marker file are refused
with the offending global named, through every pickle container the open_clip-based families read (other families
test their own containers beside their loaders)."""

from __future__ import annotations

import builtins
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from openmedclip.errors import ModelLoadError
from openmedclip.models import load_model
from openmedclip.models.checkpoint import read_state_dict


def _payloads(marker: pathlib.Path) -> dict[str, object]:
    """Objects whose unpickling creates ``marker``, one per way of reaching code."""

    class System:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    class Exec:
        def __reduce__(self):
            return builtins.exec, (f"open({str(marker)!r}, 'w').close()",)

    class Subprocess:
        def __reduce__(self):
            return subprocess.call, (["touch", str(marker)],)

    class BoundMethod:
        def __reduce__(self):
            return getattr, (pathlib.Path(marker), "touch")

    # Keys: how the refusal names the global (torch names builtins bare; pickle protocol 2 maps subprocess.call).
    return {"posix.system|os.system": System(), "GLOBAL exec": Exec(), "subprocess.call|commands.call": Subprocess(),
            "GLOBAL getattr": BoundMethod()}


PAYLOAD_KINDS = list(_payloads(pathlib.Path("x")))


def _containers(weights: dict[str, torch.Tensor], payload: object) -> dict[str, object]:
    """The published pickle layouts: a bare state dict, a DDP training checkpoint with numpy objects (UniMed-CLIP,
    PMC-CLIP), a payload hidden inside a nested value."""
    return {
        "state-dict": {**weights, "evil": payload},
        "training-checkpoint": {"epoch": 3, "best": np.float64(0.5), "state_dict": {f"module.{k}": v for k, v in
                                weights.items()}, "optimizer": {"state": {0: {"step": payload}}}},
        "nested": {"state_dict": weights, "meta": [1, 2, {"deep": (payload,)}]},
    }


@pytest.mark.parametrize("container", ["state-dict", "training-checkpoint", "nested"])
@pytest.mark.parametrize("kind", PAYLOAD_KINDS)
@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin", ".ckpt"])
def test_crafted_pickles_are_refused_and_never_run(tmp_path, container, kind, suffix):
    marker = tmp_path / "marker"
    weights = {"visual.proj": torch.ones(2, 2)}
    path = tmp_path / f"model{suffix}"
    torch.save(_containers(weights, _payloads(marker)[kind])[container], path)
    with pytest.raises(ModelLoadError) as error:
        read_state_dict(path, "crafted")
    assert "refused to unpickle" in str(error.value)
    assert any(name in str(error.value) for name in kind.split("|")), str(error.value)
    assert not marker.exists()


def test_the_biomedclip_hub_file_is_read_through_the_same_refusal(tiny_biomedclip_dir, tmp_path):
    marker = tmp_path / "marker"
    safetensors = tiny_biomedclip_dir / "open_clip_model.safetensors"
    state = load_file(str(safetensors))
    safetensors.unlink()  # BiomedCLIP publishes open_clip_pytorch_model.bin
    torch.save({**state, "evil": _payloads(marker)["GLOBAL exec"]}, tiny_biomedclip_dir / "open_clip_pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="GLOBAL exec"):
        load_model(tiny_biomedclip_dir, device="cpu")
    assert not marker.exists()


def test_a_chexzero_ensemble_member_is_read_through_the_same_refusal(tiny_arch, tmp_path, monkeypatch):
    from openmedclip.models.families.open_clip.config import OpenClipEntry
    from openmedclip.models.registry import REGISTRY, RegistryEntry, registry

    registry()
    monkeypatch.setitem(REGISTRY, "chexzero", RegistryEntry("chexzero", "chexzero", "", "test",
                                                            OpenClipEntry(architecture=tiny_arch)))
    folder = tmp_path / "zoo" / "chexzero"
    folder.mkdir(parents=True)
    marker = tmp_path / "marker"
    good = load_model(tiny_arch, device="cpu").model.state_dict()
    torch.save(good, folder / "a.pt")
    torch.save({**good, "evil": _payloads(marker)["posix.system|os.system"]}, folder / "b.pt")
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path / "zoo"))
    with pytest.raises(ModelLoadError, match=r"b\.pt.*(posix|os)\.system"):
        load_model("chexzero", device="cpu")
    assert not marker.exists()
    shutil.rmtree(folder)
