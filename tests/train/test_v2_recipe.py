"""The v2 recipe's training pieces: label-aware targets from shared class captions, modality headers, per-source
flips, MedPix field captions, and the v2 model configs and recipes themselves."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from openmedclip.data.base import Sample
from openmedclip.data.captions import CaptionSampler
from openmedclip.data.medpix import MedPix
from openmedclip.errors import InvalidInputError, RandomWeightsWarning
from openmedclip.io import MedicalImage
from openmedclip.models import load_model
from openmedclip.train import load_recipe, train
from openmedclip.train.data import caption_chooser, training_data
from openmedclip.train.losses import InfoNCELoss
from openmedclip.train.pairs import BatchPlan, CaptionChooser, PairEncoder, flip_left_right

ROOT = Path(__file__).resolve().parents[2]
V2_MODEL = ROOT / "configs" / "models" / "openmedclip-base-v2.json"
V2_RECIPE = ROOT / "configs" / "train" / "openmedclip-base-v2.yaml"
V1_RECIPE = ROOT / "configs" / "train" / "openmedclip-base.yaml"
V1_SHIPPED_STEP = 896
"""The step of the v1 checkpoint that was shipped (after epoch 14), where v2 starts."""
BANK = {"normal": ["clear lungs", "normal chest", "no disease"], "pneumonia": ["lobar pneumonia", "patchy opacity"]}


def _unit(rows: torch.Tensor) -> torch.Tensor:
    return F.normalize(rows, dim=-1)


def _sample(labels: list[str], key: str = "k", captions: list[str] | None = None) -> Sample:
    image = MedicalImage(pixels=np.arange(12, dtype=np.uint8).reshape(3, 4), path=key)
    return Sample(image, captions or [], labels, key)


# -- label-aware targets: shared class captions, modality headers --------------------------------------------


def test_infonce_with_a_shared_caption_is_the_soft_target_loss():
    """Why shared class captions make InfoNCE label-aware: equal columns, equal logits; targets spread over every
    pair with the row's caption give the same loss (and so the same gradients)."""
    g = torch.Generator().manual_seed(1)
    image, text = _unit(torch.randn(5, 8, generator=g)), _unit(torch.randn(5, 8, generator=g))
    text[3] = text[1]  # rows 1 and 3: one class, one shared caption
    same = (text @ text.T > 0.9999).float()
    targets = same / same.sum(1, keepdim=True)
    logits = 10.0 * image @ text.T
    soft = -((targets * logits.log_softmax(1)).sum(1).mean() + (targets * logits.T.log_softmax(1)).sum(1).mean()) / 2
    assert InfoNCELoss()(image, text, torch.tensor(math.log(10.0))).item() == pytest.approx(soft.item(), abs=1e-6)


def test_recipe_refuses_unknown_caption_keys(recipe):
    assert load_recipe(None, recipe(captions={"shared": True})).captions == {"shared": True}
    with pytest.raises(InvalidInputError, match="shard"):
        load_recipe(None, recipe(captions={"shard": True}))


def test_shared_captions_are_one_per_class_per_step_and_vary_over_steps():
    chooser = CaptionChooser(CaptionSampler(BANK, 0), 0, shared=True)
    a, b, c = _sample(["normal"], "a"), _sample(["normal"], "b"), _sample(["pneumonia"], "c")
    for step in range(6):
        assert chooser(a, 0, 0, step) == chooser(b, 1, 0, step) != chooser(c, 2, 0, step)
    assert {chooser(a, 0, 0, step) for step in range(3)} == set(BANK["normal"])  # every sentence in 3 steps
    per_sample = CaptionChooser(CaptionSampler(BANK, 0), 0)
    assert len({per_sample(_sample(["normal"], str(i)), i, 0, 0) for i in range(12)}) > 1


def test_modality_header_starts_about_half_of_the_label_captions():
    chooser = caption_chooser({"bank": "pediatric_chest_xray", "modality": "X-ray", "organ": "chest"}, seed=0)
    captions = [chooser(_sample(["pneumonia"], str(i)), i, 0) for i in range(200)]
    headed = [text for text in captions if text.startswith("Radiograph of the chest. ")]
    assert 60 < len(headed) < 140
    assert caption_chooser({"bank": "pediatric_chest_xray"}, seed=0).header is None


def test_header_alone_captions_a_share_with_the_header_only(recipe):
    options = {"bank": "pediatric_chest_xray", "modality": "X-ray", "organ": "chest", "header_alone": 0.3}
    chooser = caption_chooser(options, seed=0)
    captions = [chooser(_sample(["pneumonia"], str(i)), i, 0) for i in range(400)]
    alone = [text for text in captions if text == "Radiograph of the chest."]
    headed = [text for text in captions if text.startswith("Radiograph of the chest. ")]
    assert 80 < len(alone) < 160  # 30 % of 400
    assert 100 < len(headed) < 180  # half of the other 70 %
    shared = caption_chooser({**options, "shared": True}, seed=0)
    for step in range(8):  # one caption per class and step, header alone or not
        assert len({shared(_sample(["pneumonia"], str(i)), i, 0, step) for i in range(20)}) == 1
    assert "Radiograph of the chest." in {shared(_sample(["pneumonia"]), 0, 0, step) for step in range(40)}
    with pytest.raises(InvalidInputError, match="header_alone needs"):
        caption_chooser({"bank": "pediatric_chest_xray", "header_alone": 0.3}, seed=0)
    with pytest.raises(InvalidInputError, match="header_alone"):
        load_recipe(None, recipe(captions={"header_alone": 2}))


def test_shared_captions_train_and_every_pair_knows_its_run_step(recipe, tmp_path):
    class_root = tmp_path / "classes"
    for name, value in (("normal", 40), ("pneumonia", 200)):
        (class_root / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((12, 12), value + i, np.uint8)).save(class_root / name / f"{i}.png")
    bank = tmp_path / "bank.yaml"
    classes = {name: {"sentences": sentences} for name, sentences in BANK.items()}
    bank.write_text(yaml.safe_dump({"modality": "chest X-ray", "classes": classes}), encoding="utf-8")
    config = load_recipe(None, recipe(
        datasets=[{"type": "classfolders", "path": str(class_root)}], batch_size=4,
        captions={"bank": str(bank), "shared": True},
    ))
    summary = train(config)
    assert summary.step == 4 and all(math.isfinite(loss) for loss in summary.losses)
    loaded = load_model(config.model, device="cpu")
    pairs, plan = training_data(config, loaded, caption_chooser(config.captions, 0), 0, 1)
    assert isinstance(plan, BatchPlan)
    batches = list(plan.micro_batches(epoch=1))
    assert [ref[3] for batch in batches for ref in batch] == [2] * 4 + [3] * 4  # epoch 1 holds run steps 2, 3
    tokens = [pairs[ref][1] for ref in batches[0]]
    labels = [pairs.sources[0].label_list(ref[2]) for ref in batches[0]]
    for i in range(4):
        for j in range(4):
            assert torch.equal(tokens[i], tokens[j]) == (labels[i] == labels[j])


# -- flips ---------------------------------------------------------------------------------------------------


def _flipped(flips: list[bool], caption: str, augment: bool = True) -> list[bool]:
    seen: list[bool] = []

    def preprocess(image: MedicalImage) -> torch.Tensor:
        seen.append(bool(image.meta.get("flipped")))
        return torch.zeros(3, 2, 2)

    encoder = PairEncoder(
        preprocess, lambda texts: torch.zeros(len(texts), 4, dtype=torch.long), CaptionChooser(None, 0), 1,
        augment=augment, flips=flips,
    )
    for i in range(40):
        encoder.encode(_sample([], str(i), [caption]), i, 0, 0)
    return seen


def test_flips_only_where_the_source_allows_them_and_the_caption_names_no_side():
    allowed = _flipped([True], "Fundus photograph with hard exudates.")
    assert 8 < sum(allowed) < 32
    assert not any(_flipped([False], "Fundus photograph with hard exudates."))
    assert not any(_flipped([True], "Mass in the LEFT breast."))
    assert not any(_flipped([True], "Fundus photograph.", augment=False))


def test_flip_mirrors_the_pixels_and_bad_flip_values_are_refused(recipe, toy_table):
    image = _sample([]).image
    assert np.array_equal(flip_left_right(image).pixels, image.pixels[:, ::-1])
    with pytest.raises(InvalidInputError, match=r"datasets\.0\.flip: expected true or false"):
        load_recipe(None, recipe(datasets=[{"type": "table", "path": str(toy_table), "flip": "yes"}]))


# -- MedPix field captions -----------------------------------------------------------------------------------


def _medpix_folder(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images" / "MPX1_a.jpg")
    record = {
        "Type": "CT", "U_id": "MPX1", "image": "MPX1_a", "Location": "Chest, Pulmonary",
        "Location Category": "Thorax",
        "Description": {"Caption": "Mass in the lung.", "Modality": "CT w/contrast (IV)", "Plane": "Axial"},
    }
    (tmp_path / "descriptions_train.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    (tmp_path / "data_train.jsonl").write_text(json.dumps({"U_id": "MPX1", "Case": {}}) + "\n", encoding="utf-8")
    return tmp_path


def test_medpix_field_captions_describe_modality_plane_and_location(tmp_path):
    folder = _medpix_folder(tmp_path)
    header = "Axial CT image (with contrast IV) of the thorax (chest, pulmonary)."
    assert MedPix(folder, "train").captions(0) == ["Mass in the lung."]
    assert MedPix(folder, "train", field_captions=True).captions(0) == [
        "Mass in the lung.", header, f"{header} Mass in the lung."
    ]


# -- the v2 model config and recipe --------------------------------------------------------------------------


def test_v2_model_localises_on_an_8x8_grid_of_a_128_px_input():
    with pytest.warns(RandomWeightsWarning):
        loaded = load_model(str(V2_MODEL), device="cpu")
    cfg = json.loads(V2_MODEL.read_text(encoding="utf-8"))
    assert cfg["model_cfg"]["vision_cfg"]["image_size"] >= 128
    pixels = loaded.preprocess(Image.new("L", (200, 300), 90))
    assert pixels.shape == (3, 128, 128)
    with torch.inference_mode():
        grid = loaded.family.patch_features(loaded.model, pixels[None])
    assert grid.shape[1:3] == (8, 8)
    image_weights = sum(p.numel() for n, p in loaded.model.named_parameters() if not n.startswith("text.transformer"))
    assert image_weights * 2 < 40 * 2**20  # fp16 weights shipped beside the package's text tower


def test_v2_recipe_flips_only_sources_without_laterality_and_keeps_test_splits_out():
    config = load_recipe(V2_RECIPE)
    flipped = {Path(spec["path"]).name for spec in config.datasets if spec.get("flip")}
    assert flipped == {"breastmnist.npz", "retinamnist.npz"}
    banked = [spec["captions"] for spec in config.datasets if "bank" in spec.get("captions", {})]
    assert len(banked) == 3 and all(captions["shared"] and captions["header_alone"] > 0 for captions in banked)
    assert all(spec.get("split") in ("train", "train-only") for spec in config.datasets)
    assert [spec.get("split") for spec in config.val_datasets] == ["dev"]
    assert config.precision == "auto" and config.lock_text is True


def test_v2_continues_from_the_v1_checkpoint_that_was_shipped_with_a_dilated_last_stage():
    first, second = load_recipe(V1_RECIPE), load_recipe(V2_RECIPE)
    assert first.model == "configs/models/openmedclip-base-minilm.json"
    assert second.model == V2_MODEL.relative_to(ROOT).as_posix()
    assert second.checkpoint == f"{first.out_dir}/checkpoints/step-{V1_SHIPPED_STEP:08d}/open_clip_model.safetensors"
    assert first.epoch_size is not None
    steps_per_epoch = first.epoch_size // first.batch_size
    shipped_epoch = V1_SHIPPED_STEP // steps_per_epoch
    assert V1_SHIPPED_STEP % steps_per_epoch == 0 and first.epochs - shipped_epoch < first.keep_checkpoints  # kept
    assert not any(spec.get("flip") for spec in first.datasets)  # v1 never flips
    assert all(spec.get("split") in ("train", "train-only") for spec in first.datasets)
