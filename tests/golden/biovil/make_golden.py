"""Golden files of the BioViL family, made with Microsoft's own hi-ml code at tiny size.

Run once, outside the project, in a throw-away environment (CI never runs it)::

    uv venv /tmp/upstream_biovil/venv --python 3.11
    uv pip install --python /tmp/upstream_biovil/venv/bin/python hi-ml-multimodal==0.2.2 transformers==4.46.3
    /tmp/upstream_biovil/venv/bin/python tests/golden/biovil/make_golden.py

(hi-ml-multimodal 0.2.2 is the PyPI release of github.com/microsoft/hi-ml, ``hi-ml-multimodal/src``; it pulled
torch 2.15.0, torchvision 0.29.2, timm 1.0.31 here.) Written beside this script:

- ``biovil/``: a folder in the published layout of ``microsoft/BiomedVLP-CXR-BERT-specialized``: hi-ml's
  ``ImageModel`` (ResNet-50 layout with every stage 16× narrower, a 16-d joint space) saved with
  ``torch.save(state_dict)`` as ``biovil_image_resnet50_proj_size_128.pt``, and a tiny ``CXRBertModel`` as
  ``pytorch_model.bin`` (with the tied decoder keys and the ``position_ids`` buffer, as transformers 4.18 wrote
  them) + ``config.json`` (``model_type`` cxr-bert, ``auto_map``) + ``vocab.txt`` + ``tokenizer_config.json``.
- ``biovil_t_image.pt``: hi-ml's BioViL-T ``ImageModel`` (multi-image encoder, narrow trunk with one block per
  stage) WITHOUT its ViT pooler weights (1.2 M parameters, used only with a prior image); their names and shapes
  are in ``biovil_t_pooler_shapes.json``, and the test completes the published container with random values.
- ``outputs.safetensors``: pixels fed to the image models (one channel, uint8 = value × 255), their projected
  patch embeddings and global embeddings, the token ids of upstream's tokenizer (padding to the longest) and the
  projected text embeddings (raw and L2-normalised); ``prompts.json``: the texts.
- ``preprocessed.npz``: upstream's inference transform (resize 512, centre crop 480) on real chest X-rays from
  ``/work/shared/data/txv_test_cxr`` (one channel, as uint8 = value × 255; the transform's values are k/255).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import health_multimodal.image.model.encoder as hi_encoder
import numpy as np
import torch
from health_multimodal.image.data.io import load_image
from health_multimodal.image.data.transforms import create_chest_xray_transform_for_inference
from health_multimodal.image.model.model import ImageModel
from health_multimodal.image.model.resnet import ResNetHIML
from health_multimodal.image.model.types import ImageEncoderType
from health_multimodal.text.inference_engine import TextInferenceEngine
from health_multimodal.text.model import CXRBertConfig, CXRBertModel, CXRBertTokenizer
from PIL import Image
from safetensors.torch import save_file
from torchvision.models.resnet import Bottleneck

HERE = Path(__file__).resolve().parent
DATA = Path("/work/shared/data/txv_test_cxr")
sys.path.insert(0, str(HERE.parent.parent))
from tiny_models import tiny_vocab  # noqa: E402

WIDTH_DIVISOR, NUM_CLASSES, JOINT = 16, 10, 16
LAYERS = [3, 4, 6, 3]
"""Blocks per stage: ResNet-50's for BioViL; one per stage for BioViL-T (to keep the files small)."""
RESIZE, CROP = 112, 96
PROMPTS = [
    "Findings consistent with pneumonia",
    "Findings suggesting pneumonia.",
    "This opacity can represent pneumonia",
    "There is no pneumonia!",
    "No evidence of acute pneumonia",
    "small left pleural effusion with bilateral lower lobe atelectasis?",
]


class NarrowResNet(ResNetHIML):
    """hi-ml's ResNet with every stage WIDTH_DIVISOR times narrower (test size only)."""

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):  # type: ignore[no-untyped-def]
        return super()._make_layer(block, planes // WIDTH_DIVISOR, blocks, stride, dilate)


def narrow_resnet50(pretrained: bool = False, **kwargs):  # type: ignore[no-untyped-def]
    model = NarrowResNet(block=Bottleneck, layers=list(LAYERS), num_classes=NUM_CLASSES, **kwargs)
    model.fc = torch.nn.Linear(512 * Bottleneck.expansion // WIDTH_DIVISOR, NUM_CLASSES)
    return model


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Every parameter and BatchNorm statistic perturbed, so that no weight stays at a neutral value."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in module.state_dict().items():
            if not value.is_floating_point():
                continue
            noise = torch.randn(value.shape, generator=generator)
            if name.endswith("running_var"):
                value.copy_(0.5 + noise.abs())
            elif name.endswith(("weight", "bias", "running_mean")) and value.ndim == 1:
                value.add_(0.1 * noise)
            else:
                value.copy_(noise * (1.0 / max(1, value[0].numel())) ** 0.5)


def image_model(kind: str, seed: int) -> ImageModel:
    torch.manual_seed(seed)
    model = ImageModel(img_encoder_type=kind, joint_feature_size=JOINT)
    randomise(model, seed)
    return model.eval()


def pixels() -> torch.Tensor:
    transform = create_chest_xray_transform_for_inference(resize=RESIZE, center_crop_size=CROP)
    return torch.stack([transform(load_image(DATA / name)) for name in ("00000001_000.png", "00027426_000.png")])


def text_folder(folder: Path) -> TextInferenceEngine:
    vocab = tiny_vocab()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = CXRBertTokenizer(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(str(folder))
    for extra in ("special_tokens_map.json", "added_tokens.json", "tokenizer.json"):
        (folder / extra).unlink(missing_ok=True)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    settings["auto_map"] = {"AutoTokenizer": ["configuration_cxrbert.CXRBertTokenizer", None]}
    (folder / "tokenizer_config.json").write_text(json.dumps(settings, indent=2))
    config = CXRBertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        max_position_embeddings=128, projection_size=JOINT, hidden_dropout_prob=0.25, attention_probs_dropout_prob=0.25,
    )
    torch.manual_seed(7)
    model = CXRBertModel(config)
    randomise(model, 7)
    model.tie_weights()
    model.eval()
    config.architectures = ["CXRBertModel"]
    config.auto_map = {"AutoConfig": "configuration_cxrbert.CXRBertConfig",
                       "AutoModel": "modeling_cxrbert.CXRBertModel"}
    config.save_pretrained(str(folder))
    state = model.state_dict()
    state["bert.embeddings.position_ids"] = torch.arange(config.max_position_embeddings)[None]
    torch.save(state, folder / "pytorch_model.bin")
    return TextInferenceEngine(tokenizer=tokenizer, text_model=model)


def main() -> None:
    folder = HERE / "biovil"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    hi_encoder.resnet50 = narrow_resnet50
    images = pixels()
    outputs: dict[str, torch.Tensor] = {"pixels": (images[:, 0] * 255).round().to(torch.uint8)}

    biovil = image_model(ImageEncoderType.RESNET50, 1)
    torch.save(biovil.state_dict(), folder / "biovil_image_resnet50_proj_size_128.pt")
    LAYERS[:] = [1, 1, 1, 1]
    biovil_t = image_model(ImageEncoderType.RESNET50_MULTI_IMAGE, 2)
    state = biovil_t.state_dict()
    pooler = {key: list(value.shape) for key, value in state.items() if ".vit_pooler." in key}
    torch.save({k: v for k, v in state.items() if k not in pooler}, HERE / "biovil_t_image.pt")
    (HERE / "biovil_t_pooler_shapes.json").write_text(json.dumps(pooler, indent=1))
    with torch.no_grad():
        for name, model in (("biovil", biovil), ("biovil_t", biovil_t)):
            result = model(images)
            outputs[f"{name}_patches"] = model.get_patchwise_projected_embeddings(images, normalize=False)
            outputs[f"{name}_global"] = result.projected_global_embedding

    engine = text_folder(folder)
    outputs["input_ids"] = engine.tokenize_input_prompts(PROMPTS, verbose=False).input_ids
    outputs["text_raw"] = engine.get_embeddings_from_prompt(PROMPTS, normalize=False, verbose=False)
    outputs["text_normalised"] = engine.get_embeddings_from_prompt(PROMPTS, normalize=True, verbose=False)
    save_file({k: v.contiguous() for k, v in outputs.items()}, str(HERE / "outputs.safetensors"))
    (HERE / "prompts.json").write_text(json.dumps(PROMPTS, indent=1))

    def full(crop: int):  # type: ignore[no-untyped-def]
        return create_chest_xray_transform_for_inference(resize=512, center_crop_size=crop)

    def as_uint8(tensor: torch.Tensor) -> np.ndarray:
        assert torch.equal(tensor[0], tensor[1]) and torch.equal(tensor[0], tensor[2])
        return np.rint(tensor[0].numpy() * 255).astype(np.uint8)

    png = load_image(DATA / "00000001_000.png")
    non_square = Image.open(DATA / "16747_3_1.jpg").convert("L")
    np.savez_compressed(
        HERE / "preprocessed.npz",
        png_480=as_uint8(full(480)(png)),
        jpg_pil_480=as_uint8(full(480)(non_square)),
    )


if __name__ == "__main__":
    main()
