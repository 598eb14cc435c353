"""PMC-CLIP: its training checkpoint and its extracted components load strictly and give upstream's outputs.

The golden files (``tests/golden/pmc_clip/``, see its ``make_golden.py``) come from PMC-CLIP's own ``PMC_CLIP`` class
at tiny size; the published architecture only differs in its sizes (see ``test_published_entry``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig

from openmedclip import zero_shot
from openmedclip.errors import ModelLoadError
from openmedclip.io import MedicalImage, read_image
from openmedclip.models import load_model
from openmedclip.models.families.pmc_clip.config import PmcClipConfig
from openmedclip.models.families.pmc_clip.model import PmcClipModel
from openmedclip.models.family import Resolved, get_family
from openmedclip.models.registry import REGISTRY, registry
from tiny_models import assert_saved_folder_stands_alone

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "pmc_clip"
TEXT_FILES = ("config.json", "vocab.txt", "tokenizer_config.json")
COMPONENTS = ("image_encoder(resnet50).pth", "text_encoder.pth", "text_projection_layer.pth")
OLD_TEXT_REPO = "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract-fulltext"
NEW_TEXT_REPO = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext"
TINY = PmcClipConfig(embed_dim=32, image_size=64, vision_layers=(1, 1, 1, 1), vision_width=4, vision_heads=32)
"""The golden model's sizes (make_golden.py's MODEL_CFG)."""


@pytest.fixture(scope="module")
def golden() -> dict:
    arrays = np.load(GOLDEN / "golden.npz")
    info = json.loads((GOLDEN / "golden.json").read_text(encoding="utf-8"))
    return {**{key: torch.from_numpy(arrays[key]) for key in arrays.files}, **info}


@pytest.fixture()
def zoo(tmp_path, monkeypatch) -> Path:
    """``$OPENMEDCLIP_MODELS`` whose ``pmc-clip`` entry has the golden model's sizes; the folder holds the text
    tower's files and nothing else yet."""
    registry()
    monkeypatch.setitem(REGISTRY, "pmc-clip", dataclasses.replace(REGISTRY["pmc-clip"], config=TINY))
    folder = tmp_path / "zoo" / "pmc-clip"
    folder.mkdir(parents=True)
    for name in TEXT_FILES:
        shutil.copy(GOLDEN / name, folder / name)
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path / "zoo"))
    return folder


def _put(folder: Path, *names: str) -> Path:
    for name in names:
        shutil.copy(GOLDEN / name, folder / name)
    return folder


def _encode(loaded, golden) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    tokens = loaded.tokenizer(golden["texts"])
    with torch.no_grad():
        return loaded.model.encode_image(golden["pixels"]), loaded.model.encode_text(tokens), tokens


def _assert_upstream_outputs(loaded, golden) -> None:
    images, texts, tokens = _encode(loaded, golden)
    assert torch.equal(tokens, golden["tokens"])  # upstream's tokenizer: padded to 77, truncated, [UNK] kept
    assert (images - golden["image_features"]).abs().max() < 1e-5
    assert (texts - golden["text_features"]).abs().max() < 1e-5


def _training_checkpoint(path: Path, change) -> Path:
    checkpoint = torch.load(GOLDEN / "checkpoint.pt", weights_only=False)
    change(checkpoint["state_dict"])
    torch.save(checkpoint, path)
    return path


def test_training_checkpoint_loads_strictly_and_matches_upstream(zoo, golden):
    _put(zoo, "checkpoint.pt")
    with zipfile.ZipFile(GOLDEN / "checkpoint.pt") as archive:  # numpy-1 scalar, `module.` keys, MLM parts
        pickled = archive.read(next(name for name in archive.namelist() if name.endswith("data.pkl")))
    assert b"numpy.core.multiarray" in pickled and b"module.fusion_module." in pickled
    loaded = load_model("pmc-clip", device="cpu")
    assert loaded.spec.family == "pmc_clip" and loaded.spec.format == "pmc-clip-checkpoint"
    _assert_upstream_outputs(loaded, golden)
    assert loaded.logit_scale == pytest.approx(math.exp(float(golden["logit_scale"])))
    assert loaded.context_length == 77


def test_extracted_components_load_by_name_and_as_a_path(zoo, golden):
    _put(zoo, *COMPONENTS)
    projection = torch.load(GOLDEN / "text_projection_layer.pth", weights_only=True)
    assert isinstance(projection, torch.Tensor)  # the published file is a bare tensor
    loaded = load_model("pmc-clip", device="cpu")
    assert loaded.spec.format == "pmc-clip-components"
    _assert_upstream_outputs(loaded, golden)
    assert loaded.logit_scale == pytest.approx(1 / 0.07)  # not in the components: CLIP's initial temperature


def test_component_folder_as_a_path_is_read_with_the_published_architecture(tmp_path):
    folder = _put(tmp_path, *TEXT_FILES, *COMPONENTS)
    with pytest.raises(ModelLoadError, match=r"wrong shape key\(s\): visual\.conv1\.weight \(2, 3, 3, 3\) vs model "
                       r"\(32, 3, 3, 3\)"):
        load_model(folder, device="cpu")


def test_explicit_checkpoint_path(zoo, golden, tmp_path):
    checkpoint = _put(tmp_path, "checkpoint.pt") / "checkpoint.pt"
    _assert_upstream_outputs(load_model("pmc-clip", device="cpu", checkpoint=checkpoint), golden)


def test_text_features_are_upstreams_unmasked_cls_state(zoo, golden):
    """Upstream runs the BERT without attention mask; masking the padding would give other features."""
    loaded = load_model("pmc-clip", device="cpu", checkpoint=GOLDEN / "checkpoint.pt")
    model: PmcClipModel = loaded.model
    tokens = golden["tokens"]
    with torch.no_grad():
        masked = model.text_encoder(input_ids=tokens, attention_mask=(tokens != 0).long()).last_hidden_state
    assert (masked[:, 0] @ model.text_projection - golden["text_features"]).abs().max() > 1e-3
    assert (tokens[:, 0] == 2).all() and (tokens == 0).any()


@pytest.mark.parametrize("repo", [OLD_TEXT_REPO, NEW_TEXT_REPO])
def test_weights_and_text_tower_from_the_hub_cache(hf_cache, golden, monkeypatch, repo):
    """The dataset repo's checkpoint and the text repo's files in the HF cache, under either name of the text repo."""
    registry()
    monkeypatch.setitem(REGISTRY, "pmc-clip", dataclasses.replace(REGISTRY["pmc-clip"], config=TINY))
    for kind, repo_id, files in (("datasets", "axiong/pmc_oa", ("checkpoint.pt",)), ("models", repo, TEXT_FILES)):
        entry = hf_cache / f"{kind}--{repo_id.replace('/', '--')}"
        snapshot = entry / "snapshots" / "0123abc"
        snapshot.mkdir(parents=True)
        _put(snapshot, *files)
        (entry / "refs").mkdir()
        (entry / "refs" / "main").write_text("0123abc", encoding="utf-8")
    loaded = load_model("pmc-clip", device="cpu")
    assert loaded.spec.hf_repo == "axiong/pmc_oa"
    _assert_upstream_outputs(loaded, golden)


def test_text_tower_files_in_a_subfolder_named_after_the_repo(zoo, golden):
    """The layout ``openmedclip download`` gives a model folder: the needed repo's files in ``<folder>/<repo>/``."""
    _put(zoo, "checkpoint.pt")
    (zoo / NEW_TEXT_REPO).mkdir(parents=True)
    for name in TEXT_FILES:
        shutil.move(zoo / name, zoo / NEW_TEXT_REPO / name)
    _assert_upstream_outputs(load_model("pmc-clip", device="cpu"), golden)


def test_dropped_and_surplus_keys_are_named(zoo, golden):
    def change(state):
        del state["module.text_projection"]
        state["module.visual.extra.weight"] = torch.zeros(1)
        state["module.ln_final.gamma"] = torch.zeros(1)  # unused keys are set aside by name, not by prefix

    _training_checkpoint(zoo / "checkpoint.pt", change)
    with pytest.raises(ModelLoadError) as error:
        load_model("pmc-clip", device="cpu")
    message = str(error.value)
    assert "missing key(s): text_projection" in message
    assert "visual.extra.weight" in message and "ln_final.gamma" in message


def test_surplus_key_in_a_component_is_named(zoo):
    _put(zoo, *COMPONENTS)
    state = torch.load(zoo / "text_encoder.pth", weights_only=True)
    state["pooler.extra"] = torch.zeros(1)
    del state["pooler.dense.bias"]
    torch.save(state, zoo / "text_encoder.pth")
    with pytest.raises(ModelLoadError) as error:
        load_model("pmc-clip", device="cpu")
    assert "text_encoder.pooler.extra" in str(error.value) and "text_encoder.pooler.dense.bias" in str(error.value)


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("file", ["checkpoint.pt", "text_projection_layer.pth"])
def test_crafted_pickle_is_refused_and_never_runs(zoo, tmp_path, file):
    """A real container whose data.pkl is replaced by a pickle that would create a marker file when loaded."""
    _put(zoo, "checkpoint.pt") if file == "checkpoint.pt" else _put(zoo, *COMPONENTS)
    marker = tmp_path / "marker"
    original = zoo / file
    crafted = tmp_path / "crafted.pt"
    with zipfile.ZipFile(original) as source, zipfile.ZipFile(crafted, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            is_pickle = item.filename.endswith("/data.pkl")
            target.writestr(item, pickle.dumps(_Payload(marker), protocol=2) if is_pickle else data)
    shutil.move(crafted, original)
    with pytest.raises(ModelLoadError, match=r"refused to unpickle.*global (posix|os)\.system"):
        load_model("pmc-clip", device="cpu")
    assert not marker.exists()


def test_missing_model_says_which_files_where_to_get_them_and_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path))
    with pytest.raises(ModelLoadError) as error:
        load_model("pmc-clip", device="cpu")
    message = str(error.value)
    for part in ("checkpoint.pt", "https://huggingface.co/datasets/axiong/pmc_oa", "openmedclip download pmc-clip",
                 "$OPENMEDCLIP_MODELS/pmc-clip/", f"https://huggingface.co/{NEW_TEXT_REPO}", "config and tokenizer"):
        assert part in message, part
    (tmp_path / "pmc-clip").mkdir()  # a folder without weights
    with pytest.raises(ModelLoadError, match=r"holds no PMC-CLIP weights.*image_encoder\(resnet50\)\.pth"):
        load_model("pmc-clip", device="cpu")


def test_missing_text_tower_files_are_named(zoo):
    _put(zoo, "checkpoint.pt")
    for name in TEXT_FILES:
        (zoo / name).unlink()
    with pytest.raises(ModelLoadError, match="config.json of 'microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"):
        load_model("pmc-clip", device="cpu")


def test_zero_shot_end_to_end(zoo):
    _put(zoo, "checkpoint.pt")
    loaded = load_model("pmc-clip", device="cpu")
    rng = np.random.default_rng(3)
    images = [MedicalImage(rng.uniform(0, 255, (70, 90)).astype(np.float32), f"x{i}", meta={"bit_depth": 8})
              for i in range(3)]
    labels = ["pleural effusion", "pneumonia", "normal chest"]
    result = zero_shot(loaded, images, labels, templates=["{}"], num_workers=0)
    pixels = torch.stack([loaded.preprocess(image) for image in images])
    with torch.no_grad():
        image_features = F.normalize(loaded.model.encode_image(pixels), dim=-1)
        text_features = F.normalize(loaded.model.encode_text(loaded.tokenizer(labels)), dim=-1)
    expected = (loaded.logit_scale * image_features @ text_features.T).softmax(dim=-1).numpy()
    assert np.allclose(result.probabilities, expected, atol=1e-5)


@pytest.mark.realdata
def test_preprocessing_equals_upstreams_on_a_real_image(shared_data, golden):
    family = get_family("pmc_clip")
    preprocess, _ = family.preprocess(Resolved("pmc_clip", PmcClipConfig(), "pmc-clip", "test", None), None)
    image = read_image(shared_data / "medpix2_traindev" / "images" / golden["image"])
    ours = preprocess(image)
    assert ours.shape == (3, 224, 224) and (ours - golden["preprocessed"]).abs().max() < 1e-6
    rows, columns = image.pixels.shape[:2]
    geometry = preprocess.geometry((rows, columns))
    assert geometry.resized_size == (int(224 * rows / columns), 224) and geometry.model_size == (224, 224)
    assert geometry.offset == (round((geometry.resized_size[0] - 224) / 2), 0)


def test_patch_features_are_the_attention_pools_values(zoo, golden):
    """With a uniform attention (zero queries and keys) the pooled feature is the mean of the patch values and the
    mean-token's value; the published sizes give a 7 × 7 grid of 768-d features."""
    family = get_family("pmc_clip")
    model: PmcClipModel = load_model("pmc-clip", device="cpu", checkpoint=GOLDEN / "checkpoint.pt").model
    pool = model.visual.attnpool
    with torch.no_grad():
        for projection in (pool.q_proj, pool.k_proj):
            projection.weight.zero_()
            projection.bias.zero_()
        patches = family.patch_features(model, golden["pixels"])
        pooled = model.encode_image(golden["pixels"])
        features = model.feature_map(golden["pixels"])
        mean_token = pool.c_proj(pool.v_proj(features.mean(dim=(2, 3)) + pool.positional_embedding[0]))
    assert patches.shape == (3, 2, 2, 32)
    count = patches.shape[1] * patches.shape[2] + 1
    assert torch.allclose(pooled, (patches.sum(dim=(1, 2)) + mean_token) / count, atol=1e-5)

    bert = json.loads((GOLDEN / "config.json").read_text(encoding="utf-8"))
    published = PmcClipModel(PmcClipConfig(), BertConfig(**bert)).eval()
    with torch.no_grad():
        assert family.patch_features(published, torch.randn(1, 3, 224, 224)).shape == (1, 7, 7, 768)


def test_published_entry():
    entry = registry()["pmc-clip"]
    config: PmcClipConfig = entry.config
    assert entry.family == "pmc_clip" and entry.hf_repo == "axiong/pmc_oa" and entry.repo_type == "dataset"
    assert entry.url == "https://huggingface.co/datasets/axiong/pmc_oa" and entry.files == ("checkpoint.pt",)
    assert entry.needs == (NEW_TEXT_REPO,) and "MIT" in entry.licence and "Apache" in entry.licence
    assert entry.prompts == ""
    assert (config.embed_dim, config.image_size, config.vision_layers, config.vision_width, config.vision_heads) == (
        768, 224, (3, 4, 6, 3), 64, 32)
    assert (config.context_length, config.cls_token_id, config.text_model) == (77, 2, NEW_TEXT_REPO)
    assert get_family("pmc_clip").describe_entry(entry).startswith("ModifiedResNet-50 224 px")


def test_a_saved_model_folder_loads_without_the_published_files(zoo, tmp_path):
    _put(zoo, "checkpoint.pt")
    assert_saved_folder_stands_alone("pmc-clip", "pmc_clip", zoo, tmp_path / "fine-tuned")
