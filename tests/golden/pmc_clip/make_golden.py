"""Write the PMC-CLIP golden files: upstream's own ``PMC_CLIP`` at tiny size, its weights in the published
containers, inputs and upstream's outputs.

Upstream: https://github.com/WeixiongLin/PMC-CLIP at commit b0b81e3 (``src/pmc_clip``). Not run by CI.

How to run (from the repository root; nothing is installed into the project)::

    git clone https://github.com/WeixiongLin/PMC-CLIP /tmp/upstream_pmc_clip   # then check out b0b81e3
    uv venv -p 3.11 /tmp/upstream_pmc_clip/venv
    uv pip install --python /tmp/upstream_pmc_clip/venv torch==2.15.0 torchvision==0.29.2 transformers==4.30.2 \
        "numpy<2" ftfy regex tqdm timm==1.0.31
    /tmp/upstream_pmc_clip/venv/bin/python tests/golden/pmc_clip/make_golden.py --upstream /tmp/upstream_pmc_clip/src \
        --image ../shared/data/medpix2_traindev/images/MPX1007_synpic46719.jpg

transformers 4.30.2 is the newest release that still writes ``embeddings.position_ids`` into BERT state dicts, as
the published checkpoint (made with transformers <= 4.21) does; BERT's computation is the same in both. numpy 1.x
makes the checkpoint's numpy scalar pickle under its numpy-1 name, as in the published file.

The model: ModifiedResNet layers [1, 1, 1, 1], width 4, 64 px, 32 attention-pool heads (head width 4, 128 / 32,
as the published 2048 / 64), embedding 32; a 2-layer, 32-wide BERT with pooler (``config.json`` here) and the words of
``tests/tiny_models.py`` as ``vocab.txt``; ``--mlm`` on (so ``mlm_projection`` exists), one fusion layer. Every
weight is perturbed from upstream's initialisation with a fixed seed (upstream zero-initialises several of them,
which would hide mistakes), and the batch-norm statistics are those of a few random batches, so that image
features depend on the image.

Written here:

- ``checkpoint.pt``: the training container, ``{"epoch", "name", "state_dict": {"module." + key: tensor},
  "best_metric": numpy scalar}``;
- ``image_encoder(resnet50).pth``, ``text_encoder.pth``, ``text_projection_layer.pth``: the extracted components
  (visual state dict, BERT state dict, bare projection tensor);
- ``config.json``, ``vocab.txt``, ``tokenizer_config.json``: the text tower's files (as in the PubMedBERT repo);
- ``golden.npz``: ``pixels`` [3, 3, 64, 64], ``tokens`` [4, 77] (upstream's tokenizer), ``image_features``,
  ``text_features`` (unnormalised, as upstream's ``encode_image`` / ``encode_text`` return them), ``logit_scale``,
  ``preprocessed`` (upstream's eval transform at 224 px on ``--image``);
- ``golden.json``: texts, image name, sizes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
TEXT_REPO = "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract-fulltext"
TEXTS = [
    "A chest X-ray showing bilateral pleural effusions.",
    "Axial CT of the abdomen: no acute findings",
    "histopathology slide, zygomycosis stain",  # 'zygomycosis' is not in the vocabulary -> [UNK]
    " ".join(["normal chest radiograph"] * 40),  # longer than 77 tokens: truncated
]
MODEL_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 4, "head_width": 4, "patch_size": None},
    "text_cfg": {"context_length": 77, "width": 32, "heads": 2, "layers": 2, "fusion_layers": 1,
                 "bert_model_name": TEXT_REPO},
}
BERT = {
    "architectures": ["BertForMaskedLM"], "model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2,
    "num_attention_heads": 2, "intermediate_size": 37, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 128, "type_vocab_size": 2,
    "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0, "position_embedding_type": "absolute",
}


def write_text_tower_files() -> None:
    sys.path.insert(0, str(HERE.parents[1]))
    from tiny_models import tiny_vocab

    vocab = tiny_vocab()
    (HERE / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (HERE / "config.json").write_text(json.dumps({**BERT, "vocab_size": len(vocab)}, indent=2), encoding="utf-8")
    (HERE / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}), encoding="utf-8")


def upstream_model(upstream: Path) -> torch.nn.Module:
    """Upstream's PMC_CLIP, with its hub lookups of the text tower pointed at the tiny files here."""
    sys.path.insert(0, str(upstream))
    import transformers
    from pmc_clip.model import pmc_clip

    class LocalTokenizer:
        @staticmethod
        def from_pretrained(name: str, **kwargs):
            assert name == TEXT_REPO
            return transformers.AutoTokenizer.from_pretrained(str(HERE), **kwargs)

    class LocalModel:
        @staticmethod
        def from_pretrained(name: str, **kwargs):
            assert name == TEXT_REPO
            return transformers.AutoModel.from_config(transformers.AutoConfig.from_pretrained(str(HERE)))

    pmc_clip.AutoTokenizer, pmc_clip.AutoModel = LocalTokenizer, LocalModel
    vocab_size = json.loads((HERE / "config.json").read_text())["vocab_size"]
    cfg = json.loads(json.dumps(MODEL_CFG))
    cfg["text_cfg"]["vocab_size"] = vocab_size
    torch.manual_seed(0)
    model = pmc_clip.PMC_CLIP(args=SimpleNamespace(device="cpu", mlm=True), **cfg)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name == "logit_scale":
                parameter.fill_(3.1)
            else:
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
        for module in model.visual.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.momentum = None  # running statistics = plain average over the batches below
        model.visual.train()
        for _ in range(4):
            model.visual(torch.randn(8, 3, 64, 64, generator=generator))
    return model.eval()


def save_containers(model: torch.nn.Module) -> None:
    state = {"module." + key: value for key, value in model.state_dict().items()}
    assert "module.text_encoder.embeddings.position_ids" in state and "module.mlm_projection" in state
    torch.save({"epoch": 100, "name": "tiny", "state_dict": state, "best_metric": np.float64(0.5)},
               HERE / "checkpoint.pt")
    torch.save(model.visual.state_dict(), HERE / "image_encoder(resnet50).pth")
    torch.save(model.text_encoder.state_dict(), HERE / "text_encoder.pth")
    torch.save(model.text_projection.detach().clone(), HERE / "text_projection_layer.pth")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, required=True, help="PMC-CLIP's src/ folder")
    parser.add_argument("--image", type=Path, required=True, help="a real image for the preprocessing golden")
    args = parser.parse_args()
    write_text_tower_files()
    model = upstream_model(args.upstream)
    save_containers(model)

    from PIL import Image
    from pmc_clip.transform import image_transform

    pixels = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        image_features = model.encode_image(pixels)["image_features"]
        batch = {"bert_input": TEXTS, "bert_label": TEXTS}
        text_features = model.encode_text(batch, torch.zeros(len(TEXTS), MODEL_CFG["embed_dim"]))["text_features"]
    tokens = model.tokenizer(TEXTS, padding="max_length", truncation=True, max_length=77, return_tensors="pt")
    transform = image_transform(SimpleNamespace(crop_scale=None), 224, is_train=False)
    with Image.open(args.image) as picture:
        preprocessed = transform(picture)
    np.savez_compressed(
        HERE / "golden.npz",
        pixels=pixels.numpy(),
        tokens=tokens["input_ids"].numpy(),
        image_features=image_features.numpy(),
        text_features=text_features.numpy(),
        logit_scale=model.logit_scale.detach().numpy(),
        preprocessed=preprocessed.numpy(),
    )
    info = {"texts": TEXTS, "image": args.image.name, "model_cfg": MODEL_CFG, "upstream_commit": "b0b81e3"}
    (HERE / "golden.json").write_text(json.dumps(info, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
