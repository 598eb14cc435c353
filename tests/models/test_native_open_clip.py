"""The plain-torch runtime of the open_clip family (timm ResNet + BERT models, the built-in one): same keys, same
tokens, same pixels and the same features as the model open_clip, timm and transformers build; covered configs
only; start-up without those libraries."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from openmedclip.errors import InvalidInputError, ModelLoadError
from openmedclip.io import read_image
from openmedclip.models import load_model, save_model
from openmedclip.models.families.open_clip import native
from openmedclip.models.families.open_clip.native.bert import BertEncoder, BertShape
from openmedclip.models.families.open_clip.native.model import NativeClip
from openmedclip.models.families.open_clip.native.resnet import RESNETS, ResNet
from openmedclip.models.registry import registry
from openmedclip.prompts import list_banks, load_bank

BUILTIN = "openmedclip-base"


@pytest.fixture(scope="module")
def builtin_pair():
    """The built-in model on the plain-torch modules and on the libraries' classes (fp32, CPU)."""
    return (
        load_model(BUILTIN, device="cpu", precision="fp32"),
        load_model(BUILTIN, device="cpu", precision="fp32", runtime="library"),
    )


def _randomise_batch_norm(module: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for layer in module.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.copy_(torch.randn(layer.num_features, generator=generator) * 0.1)
            layer.running_var.copy_(torch.rand(layer.num_features, generator=generator) + 0.5)
            layer.weight.data.copy_(torch.rand(layer.num_features, generator=generator) + 0.5)
            layer.bias.data.copy_(torch.randn(layer.num_features, generator=generator) * 0.1)


@pytest.mark.parametrize(
    ("name", "output_stride"),
    [(name, 32) for name in sorted(RESNETS)]
    + [("resnet10t", 16), ("resnet10t", 8), ("resnet50d", 16), ("resnet18", 16)],
)
def test_resnet_matches_timm(name, output_stride):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    reference = timm.create_model(
        name, pretrained=False, num_classes=0, global_pool="avg", output_stride=output_stride
    ).eval()
    _randomise_batch_norm(reference, 1)
    ours = ResNet(RESNETS[name], output_stride).eval()
    assert list(ours.state_dict()) == list(reference.state_dict())
    ours.load_state_dict(reference.state_dict(), strict=True)
    pixels = torch.randn(2, 3, 72, 56)
    with torch.no_grad():
        assert torch.allclose(ours.forward_features(pixels), reference.forward_features(pixels), atol=1e-5)
        assert torch.allclose(ours(pixels), reference(pixels), atol=1e-5)
        assert ours.forward_features(torch.zeros(1, 3, 128, 128)).shape[-1] == 128 // output_stride
    assert ours.num_features == reference.num_features


def test_bert_matches_transformers():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=40, attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    reference = transformers.BertModel(config, add_pooling_layer=False).eval()
    shape = BertShape.from_config(config.to_dict())
    assert shape is not None
    ours = BertEncoder(shape).eval()
    assert set(ours.state_dict()) == set(reference.state_dict())
    ours.load_state_dict(reference.state_dict(), strict=True)
    tokens = torch.randint(1, 120, (3, 12))
    mask = torch.ones_like(tokens)
    mask[1, 7:] = 0
    mask[2, 3:] = 0
    tokens = tokens * mask
    with torch.no_grad():
        expected = reference(input_ids=tokens, attention_mask=mask).last_hidden_state
        got = ours(tokens, mask)
    valid = mask.bool()
    assert torch.allclose(got[valid], expected[valid], atol=1e-5)


@pytest.mark.parametrize(
    "change",
    [{"model_type": "roberta"}, {"hidden_act": "gelu_new"}, {"position_embedding_type": "relative_key"},
     {"is_decoder": True}],
)
def test_bert_shape_refuses_other_encoders(change):
    config = {"model_type": "bert", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
              "num_attention_heads": 2, "intermediate_size": 16}
    assert BertShape.from_config(config) is not None
    assert BertShape.from_config({**config, **change}) is None


def test_builtin_model_runs_natively_with_the_same_weights(builtin_pair):
    ours, library = builtin_pair
    assert isinstance(ours.model, NativeClip)
    assert type(library.model).__name__ == "CustomTextCLIP"
    mine, theirs = ours.model.state_dict(), library.model.state_dict()
    assert list(mine) == list(theirs)
    assert all(torch.equal(mine[key], theirs[key]) for key in mine)
    assert ours.spec.config == library.spec.config
    assert ours.context_length == library.context_length


def test_builtin_tokens_equal_transformers_on_every_prompt_bank(builtin_pair):
    ours, library = builtin_pair
    sentences = sorted({s for bank in list_banks() for name in load_bank(bank).classes
                        for s in load_bank(bank).sentences(name)})
    tricky = ["  Normal\tchest\n radiograph  ", "Ünïcode façade — naïve café", "CT 3×4 cm mass; 12mm nodule?",
              "x " * 200, "", "中文 findings", "[CLS] [SEP] [PAD] literal"]
    texts = sentences + tricky
    assert len(sentences) > 100
    assert torch.equal(ours.tokenizer(texts), library.tokenizer(texts))
    assert torch.equal(ours.tokenizer("one text"), library.tokenizer("one text"))


def test_builtin_features_equal_open_clip(builtin_pair):
    ours, library = builtin_pair
    tokens = library.tokenizer(["a chest x-ray with pneumonia", "normal", "MRI of the brain showing a lesion"])
    pixels = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(ours.model.encode_text(tokens), library.model.encode_text(tokens), atol=1e-6)
        assert torch.allclose(ours.model.encode_image(pixels), library.model.encode_image(pixels), atol=1e-6)
        assert torch.allclose(ours.model.encode_image(pixels, normalize=True).norm(dim=-1), torch.ones(3))
        assert torch.allclose(ours.family.patch_features(ours.model, pixels),
                              library.family.patch_features(library.model, pixels), atol=1e-6)
    assert ours.family.text_pad_id(ours.model) == library.family.text_pad_id(library.model) == 0


def test_builtin_bf16_features_equal_open_clip_in_bf16():
    ours = load_model(BUILTIN, device="cpu", precision="bf16")
    library = load_model(BUILTIN, device="cpu", precision="bf16", runtime="library")
    tokens = library.tokenizer(["a chest x-ray with pneumonia", "normal chest"])
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    with torch.no_grad():
        for encode in ("encode_text", "encode_image"):
            inputs = tokens if encode == "encode_text" else pixels
            a, b = getattr(ours.model, encode)(inputs).float(), getattr(library.model, encode)(inputs).float()
            assert torch.nn.functional.cosine_similarity(a, b).min() > 0.9999


@pytest.mark.realdata
def test_builtin_pixels_equal_open_clip_on_real_files(builtin_pair, shared_data):
    ours, library = builtin_pair
    files = [
        *sorted((shared_data / "txv_test_cxr").glob("*.png"))[:2],
        *sorted((shared_data / "medpix2_traindev").rglob("*.jp*g"))[:2],
        *sorted(shared_data.rglob("*.dcm"))[:2],
    ]
    assert len(files) >= 4
    for path in files:
        image = read_image(path)
        assert torch.equal(ours.preprocess(image), library.preprocess(image)), path
        with Image.open(path if path.suffix != ".dcm" else files[0]) as picture:
            assert torch.equal(ours.preprocess(picture), library.preprocess(picture)), path


@pytest.mark.realdata
def test_builtin_pixels_of_grey_rgb_jpegs_equal_the_rgb_transform(builtin_pair, shared_data):
    """The native preprocess resamples grey pictures stored as RGB as 'L': the tensors equal open_clip's transform
    on the RGB picture."""
    ours, library = builtin_pair
    resize_and_crop = ours.preprocess._resize_and_crop
    modes: list[str] = []
    ours.preprocess._resize_and_crop = lambda picture: modes.append(picture.mode) or resize_and_crop(picture)
    try:
        for path in sorted((shared_data / "vqa_rad" / "images").glob("*.jpg"))[:120:20]:
            with Image.open(path) as opened:
                picture = opened.convert("RGB")
            assert torch.equal(ours.preprocess(read_image(path)), library.preprocess.transform(picture)), path
    finally:
        del ours.preprocess._resize_and_crop
    assert modes.count("L") >= 4  # resampled as one channel


def test_shortest_side_resize_and_crop_equal_open_clip(builtin_pair, tmp_path):
    folder = save_model(builtin_pair[1], tmp_path / "shortest")
    config_file = folder / "open_clip_config.json"
    config = json.loads(config_file.read_text())
    config["preprocess_cfg"].update(resize_mode="shortest", interpolation="bilinear")
    config_file.write_text(json.dumps(config))
    ours = load_model(folder, device="cpu", precision="fp32")
    library = load_model(folder, device="cpu", precision="fp32", runtime="library")
    assert isinstance(ours.model, NativeClip)
    rng = np.random.default_rng(0)
    for rows, columns, mode in ((300, 200, "L"), (97, 211, "RGB"), (64, 64, "L"), (65, 64, "RGB")):
        shape = (rows, columns) if mode == "L" else (rows, columns, 3)
        picture = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)
        assert torch.equal(ours.preprocess(picture), library.preprocess(picture)), (rows, columns, mode)
        assert ours.preprocess.geometry((rows, columns)) == library.preprocess.geometry((rows, columns))


def test_saved_native_model_loads_in_either_runtime(builtin_pair, tmp_path):
    ours, _ = builtin_pair
    folder = save_model(ours, tmp_path / "saved", base_weights={})
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    again = load_model(folder, device="cpu", precision="fp32")
    library = load_model(folder, device="cpu", precision="fp32", runtime="library")
    tokens = ours.tokenizer(["pleural effusion"])
    with torch.no_grad():
        expected = ours.model.encode_text(tokens)
        assert torch.equal(again.model.encode_text(tokens), expected)
        assert torch.allclose(library.model.encode_text(tokens), expected, atol=1e-6)


def test_uncovered_models_use_the_libraries(tiny_model_dir, builtin_pair):
    assert not isinstance(load_model(tiny_model_dir, device="cpu").model, NativeClip)  # ViT + open_clip text
    ours = builtin_pair[0]
    resolved = ours.family.resolve(BUILTIN, checkpoint=None, entry=registry()[BUILTIN])
    assert native.applies(resolved, BUILTIN)
    assert not native.applies(dataclasses.replace(resolved, weights=None), BUILTIN)  # random weights
    config = resolved.config
    for vision in ({"timm_model_name": "vit_small_patch16_224"}, {"timm_pool": "abs_attn"}, {"timm_drop": 0.1}):
        model_cfg = {**config.model_cfg, "vision_cfg": {**config.model_cfg["vision_cfg"], **vision}}
        changed = dataclasses.replace(resolved, config=dataclasses.replace(config, model_cfg=model_cfg))
        assert not native.applies(changed, BUILTIN), vision
    longest = dataclasses.replace(config, preprocess_cfg={**config.preprocess_cfg, "resize_mode": "longest"})
    assert not native.applies(dataclasses.replace(resolved, config=longest), BUILTIN)


def test_runtime_is_checked_and_library_models_lock_towers(builtin_pair):
    with pytest.raises(ModelLoadError, match="runtime must be one of auto, library"):
        load_model(BUILTIN, runtime="fast")
    ours = builtin_pair[0]
    with pytest.raises(InvalidInputError, match="runtime='library'"):
        ours.family.lock_towers(ours.model, image=True, text=False)
    assert ours.family.frozen_text_encoder(ours.model, max_entries=4) is None


@pytest.mark.realdata
def test_one_image_zeroshot_imports_none_of_the_heavy_libraries(shared_data):
    image = sorted((shared_data / "txv_test_cxr").glob("*.png"))[0]
    script = (
        "import sys\n"
        "from openmedclip.cli.app import main\n"
        f"sys.argv = ['openmedclip', 'zeroshot', {str(image)!r}, '--labels', 'normal,pneumonia']\n"
        "try:\n    main()\nexcept SystemExit as stop:\n    code = stop.code\n"
        "heavy = ('open_clip', 'timm', 'transformers', 'torchvision', 'sklearn', 'pydicom', 'nibabel',"
        " 'huggingface_hub', 'torch._dynamo')\n"
        "print('IMPORTED', sorted(name for name in heavy if name in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=300)
    assert "IMPORTED []" in done.stdout, done.stdout + done.stderr
    assert "normal" in done.stdout and "pneumonia" in done.stdout


def test_builtin_zero_shot_is_the_same_in_both_runtimes(builtin_pair, image_folder):
    from openmedclip.tasks.zeroshot import zero_shot

    ours, library = builtin_pair
    files = sorted(str(path) for path in Path(image_folder).rglob("*.png"))
    a = zero_shot(ours, files, ["normal", "pneumonia"])
    b = zero_shot(library, files, ["normal", "pneumonia"])
    assert a.items == b.items and len(a.items) == len(files)
    assert np.allclose(a.probabilities, b.probabilities, atol=1e-6)
    assert a.prompts == b.prompts


@pytest.mark.parametrize("output", [[], ["--json"]])
def test_zeroshot_prints_the_same_on_either_runtime(monkeypatch, capsys, image_folder, output):
    import openmedclip.models as models
    from openmedclip.cli.app import main

    def printed() -> str:
        monkeypatch.setattr(sys, "argv", ["openmedclip", "zeroshot", str(image_folder), "--labels",
                                          "normal,pneumonia", *output])
        with pytest.raises(SystemExit) as done:
            main()
        assert done.value.code == 0
        return capsys.readouterr().out

    native_output = printed()
    library_load = models.load_model
    built: list[str] = []

    def load_with_the_libraries(*args, **kwargs):
        loaded = library_load(*args, **{**kwargs, "runtime": "library"})
        built.append(type(loaded.model).__name__)
        return loaded

    monkeypatch.setattr(models, "load_model", load_with_the_libraries)
    assert printed() == native_output
    assert built == ["CustomTextCLIP"]
    assert "normal" in native_output
