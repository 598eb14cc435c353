"""Write the MedCLIP golden files: upstream's own classes at tiny size, random weights, inputs and outputs.

Upstream: github.com/RyanWangZf/MedCLIP at commit 9c3396f20d5d54e4fae241b8cb06ca45848e98c9, the same code as the
PyPI release ``medclip==0.0.3`` (only ``evaluator.py`` differs). Run it outside this project, in a throw-away
environment with upstream's pinned transformers::

    uv venv /tmp/upstream_medclip/venv --python 3.11
    uv pip install --python /tmp/upstream_medclip/venv torch torchvision "transformers==4.24.0" "numpy<2" \\
        pillow requests pandas scikit-learn nltk wget tqdm timm safetensors
    uv pip install --python /tmp/upstream_medclip/venv --no-deps medclip==0.0.3
    /tmp/upstream_medclip/venv/bin/python tests/golden/medclip/make_golden.py

(measured with torch 2.15.0, torchvision 0.29.2, transformers 4.24.0, tokenizers 0.13.3, Pillow 13.0.0).

Only this script patches upstream, in its own process: ``AutoModel.from_pretrained`` builds the tiny Swin or BERT
(random weights, the tiny BERT config and vocabulary written to ``text/``), ``torchvision.models.resnet50`` builds
``ResNet(Bottleneck, [1, 1, 1, 1], width_per_group=1)`` (resnet50's key names, fewer blocks, narrow bottlenecks),
the hard-coded 768/2048 → 512 projections are replaced by tiny ones, and ``Tensor.cuda`` is the identity.
Written here:

- ``text/config.json``, ``text/vocab.txt``: the tiny stand-in for ``emilyalsentzer/Bio_ClinicalBERT`` (BERT-cased
  special-token ids: [PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102; no ``tokenizer_config.json``, like the real repo);
- ``swin/pytorch_model.bin``: ``MedCLIPModel(vision_cls=MedCLIPVisionModelViT).state_dict()``, as published;
- ``resnet/stored_tensors.bin``: the same for the ResNet model without the tensors listed in ``inputs.json``
  under ``pattern_keys`` (values from ``pattern.py``, see there);
- ``inputs.json``: texts, tiny architecture settings, pattern keys and shapes, the real images used;
- ``outputs.npz``: pixels, upstream token ids and masks (padding to the longest text of each batch), image and text
  embeddings and logits of both models (``logit_scale`` is saved as 4.9, so upstream's clamp to 4.6052 shows);
- ``preprocess.npz``: ``MedCLIPFeatureExtractor()`` output for two real images.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision
import transformers
from medclip import constants, modeling_medclip
from medclip.dataset import MedCLIPFeatureExtractor
from PIL import Image
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]
from pattern import large_keys, pattern  # noqa: E402

from tiny_models import _PUNCTUATION, _SUFFIXES, _WORDS  # noqa: E402

DATA = HERE.parents[2].parent / "shared" / "data"
EMBED = 16
SWIN = {"image_size": 64, "patch_size": 2, "embed_dim": 8, "depths": [2, 2, 1, 1], "num_heads": [1, 2, 2, 4],
        "window_size": 4, "mlp_ratio": 2.0}
RESNET = {"layers": [1, 1, 1, 1], "width_per_group": 1}
BERT = {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 37,
        "max_position_embeddings": 80}
TEXTS_A = ["mild subsegmental atelectasis at the lung bases", "Cardiomegaly Unchanged",
           "small left bilateral pleural effusion", "pulmonary edema", "Patchy consolidation at the Left Lower Lobe"]
TEXTS_B = [" ".join(["bilateral pleural effusion with adjacent atelectasis"] * 15), "no acute findings (x-ray)"]
IMAGES = {"xray": "txv_test_cxr/16747_3_1.jpg", "small": "medmnist/pneumoniamnist.npz:test_images[0]"}


def write_text_tower(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    vocab = ["[PAD]", *[f"[unused{i}]" for i in range(1, 100)], "[UNK]", "[CLS]", "[SEP]", "[MASK]",
             *_WORDS, *_SUFFIXES, *_PUNCTUATION]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    transformers.BertConfig(vocab_size=len(dict.fromkeys(vocab)), **BERT).save_pretrained(folder)


class TinyAutoModel:
    """``AutoModel.from_pretrained`` for the two names upstream asks for: random tiny towers."""

    @staticmethod
    def from_pretrained(name: str, **options):
        if name == constants.VIT_TYPE:
            return transformers.SwinModel(transformers.SwinConfig(**SWIN))
        config = transformers.BertConfig.from_pretrained(HERE / "text", **options)
        return transformers.BertModel(config)


class TinyAutoTokenizer:
    @staticmethod
    def from_pretrained(name: str, **options):
        return transformers.AutoTokenizer.from_pretrained(HERE / "text", **options)


def perturb_norms(model: nn.Module) -> None:
    """Non-trivial BatchNorm/LayerNorm parameters and statistics, so eval-mode normalisation is exercised."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm2d, nn.LayerNorm)):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)


def build(vision: str, seed: int) -> tuple[nn.Module, dict]:
    torch.manual_seed(seed)
    if vision == "resnet":
        model = modeling_medclip.MedCLIPModel(vision_cls=modeling_medclip.MedCLIPVisionModel)
        model.vision_model.model.fc = nn.Linear(2048, EMBED, bias=False)
    else:
        model = modeling_medclip.MedCLIPModel(vision_cls=modeling_medclip.MedCLIPVisionModelViT)
        model.vision_model.projection_head = nn.Linear(SWIN["embed_dim"] * 8, EMBED, bias=False)
    model.text_model.projection_head = nn.Linear(BERT["hidden_size"], EMBED, bias=False)
    perturb_norms(model)
    model.logit_scale.data.fill_(4.9)
    state = model.state_dict()
    for index, key in enumerate(large_keys(state)):
        state[key] = pattern(tuple(state[key].shape), index)
    model.load_state_dict(state)
    return model.eval(), state


def main() -> None:
    write_text_tower(HERE / "text")
    modeling_medclip.AutoModel = TinyAutoModel
    modeling_medclip.AutoTokenizer = TinyAutoTokenizer
    torchvision.models.resnet50 = lambda **_: ResNet(Bottleneck, RESNET["layers"],
                                                     width_per_group=RESNET["width_per_group"])
    torch.Tensor.cuda = lambda self, *args, **kwargs: self

    tokenizer = transformers.AutoTokenizer.from_pretrained(HERE / "text")
    tokenizer.model_max_length = 77  # as upstream's MedCLIPProcessor and process_class_prompts set it
    batches = {name: tokenizer(texts, truncation=True, padding=True, return_tensors="pt")
               for name, texts in (("a", TEXTS_A), ("b", TEXTS_B))}
    torch.manual_seed(100)
    pixels = torch.randn(2, 1, SWIN["image_size"], SWIN["image_size"])
    outputs: dict[str, np.ndarray] = {"pixels": pixels.numpy()}
    for name, batch in batches.items():
        outputs[f"input_ids_{name}"] = batch["input_ids"].numpy()
        outputs[f"attention_mask_{name}"] = batch["attention_mask"].numpy()

    shapes: dict[str, list[int]] = {}
    pattern_keys: list[str] = []
    for seed, vision in enumerate(("resnet", "swin")):
        model, state = build(vision, seed)
        large = large_keys(state)
        folder = HERE / vision
        folder.mkdir(exist_ok=True)
        if large:
            pattern_keys, shapes = large, {key: list(state[key].shape) for key in large}
            torch.save({k: v for k, v in state.items() if k not in large}, folder / "stored_tensors.bin")
        else:
            torch.save(state, folder / "pytorch_model.bin")
        with torch.no_grad():
            outputs[f"{vision}_image"] = model.encode_image(pixels).numpy()
            for name, batch in batches.items():
                text = model.encode_text(batch["input_ids"], batch["attention_mask"])
                outputs[f"{vision}_text_{name}"] = text.numpy()
            result = model(input_ids=batches["a"]["input_ids"], pixel_values=pixels,
                           attention_mask=batches["a"]["attention_mask"])
            outputs[f"{vision}_logits"] = result["logits"].numpy()
    np.savez_compressed(HERE / "outputs.npz", **outputs)

    extractor = MedCLIPFeatureExtractor()
    small = np.load(DATA / "medmnist" / "pneumoniamnist.npz")["test_images"][0]
    pictures = {"xray": Image.open(DATA / IMAGES["xray"]), "small": Image.fromarray(small)}
    np.savez_compressed(HERE / "preprocess.npz", **{
        name: extractor(picture, return_tensors="np")["pixel_values"][0] for name, picture in pictures.items()})

    settings = {"texts_a": TEXTS_A, "texts_b": TEXTS_B, "embed_dim": EMBED, "swin": SWIN, "resnet": RESNET,
                "pattern_keys": pattern_keys, "pattern_shapes": shapes, "images": IMAGES,
                "upstream": "RyanWangZf/MedCLIP@9c3396f20d5d54e4fae241b8cb06ca45848e98c9 (medclip 0.0.3)",
                "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                             "transformers": transformers.__version__}}
    (HERE / "inputs.json").write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
