"""Write the GLoRIA golden files: upstream's own classes at tiny size, random weights, inputs and outputs.

Upstream: github.com/marshuang80/gloria at commit 416466af1036294301a872e4da169fefc137a192.

How to run (never in CI; nothing here runs inside the project's environment)::

    git clone https://github.com/marshuang80/gloria /tmp/upstream_gloria/src   # then check out the commit above
    uv venv /tmp/upstream_gloria/venv
    uv pip install --python /tmp/upstream_gloria/venv torch==2.15.0 torchvision==0.29.2 "transformers<5" \
        omegaconf nltk opencv-python-headless scikit-learn pandas numpy pillow
    /tmp/upstream_gloria/venv/bin/python tests/golden/gloria/make_golden.py /tmp/upstream_gloria/src

(run with transformers 4.57.6, omegaconf 2.4.0, opencv-python-headless 5.0.0, nltk 3.10.4, numpy 2.x.)

What is patched, in this script only:

- packages upstream imports but this run does not use (pytorch_lightning, segmentation_models_pytorch, wandb,
  pydicom, albumentations, skimage, ``numpy.lib.function_base``) are stub modules;
- ``AutoModel.from_pretrained`` builds the tiny BERT of ``config.json`` with random weights (the tokenizer is read
  by upstream's unpatched ``AutoTokenizer.from_pretrained`` from a folder laid out like Bio_ClinicalBERT's:
  ``config.json`` + ``vocab.txt``, BERT-cased special-token ids);
- ``cnn_backbones.resnet_50`` returns a narrow ResNet with torchvision's Bottleneck blocks and ResNet-50 key names
  (one block per stage, planes 4/8/16/32, a stem as wide as the first planes as in ResNet-50: layer3 gives 64
  channels, layer4 128);
- ``ImageEncoder`` gets the ``cfg`` attribute its ``forward`` reads but ``__init__`` never sets.

Outputs (``tests/golden/gloria/``): ``chexpert_resnet50.ckpt`` (a PyTorch-Lightning 1.1-style checkpoint: the
``gloria.``-prefixed state dict, the OmegaConf ``DictConfig`` in ``hyper_parameters`` and ``hparams_type``, callback
states keyed by the callback classes, optimizer/scaler state), ``config.json`` + ``vocab.txt`` (the tiny BERT),
``cxr_*.png`` (crops of NIH ChestX-ray14 images 00000001_000 and 00027426_000 from torchxrayvision's test data;
NIH CXR14: no use restrictions, attribution: Wang et al., CVPR 2017, NIH Clinical Center), ``inputs.json`` (texts
and upstream's token ids), ``golden.safetensors`` (upstream's preprocessed images as uint8 grey values before
normalisation, and all model outputs). It prints the largest difference between cv2's INTER_AREA resize and exact
area averaging (what the project uses; PIL's BOX filter for comparison) on the real chest X-rays.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import sys
import types
from collections import OrderedDict
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path("/work/shared/data/txv_test_cxr")
SEED = 0
STUBBED = ("pytorch_lightning", "segmentation_models_pytorch", "wandb", "pydicom", "albumentations", "skimage")
WORDS = """
small large mild moderate severe minimal left right bilateral lower upper lobe lobes base bases lung lungs zone
pleural effusion pneumothorax pneumonia consolidation opacity atelectasis edema cardiomegaly heart cardiac size
silhouette enlarged normal stable unchanged no with and at the of is likely chest view portable demonstrates
subsegmental linear trace patchy airspace increased improved
""".split()
SUFFIXES = ["##s", "##es", "##ed", "##ing", "##al", "##ly", "##ic", "##ia", "##ity", "##ation"]
TEXTS = [
    "Small left pleural effusion.",
    "mild cardiomegaly with edema\n1. No pneumothorax. 2. Stable lungs",
    "Pneumonia",
    "Right lower lobe opacité, likely pneumonia; café au lait. Edema",
    "bilateral patchy airspace opacities\ufffd\ufffdat the lung bases",
    " ".join(["moderate bilateral effusions and increased consolidation"] * 14),
]
LOCAL_TEXTS = [0, 1, 3, 4, 5]
"""Texts with at least one word (an empty caption has no local similarity upstream)."""


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Creates empty modules for the packages in STUBBED; any attribute is a (cached) dummy class."""

    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in STUBBED:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        classes: dict[str, type] = {}

        def attribute(name):
            if name.startswith("__"):
                raise AttributeError(name)
            if name not in classes:
                classes[name] = type(name, (), {"__module__": spec.name, "__qualname__": name})
            return classes[name]

        module.__getattr__ = attribute
        return module

    def exec_module(self, module):
        pass


def _install_stubs():
    import numpy as np

    sys.meta_path.insert(0, _StubFinder())
    sys.modules["numpy.lib.function_base"] = types.SimpleNamespace(extract=np.extract)


def _write_tiny_bert(folder: Path) -> None:
    from transformers import BertConfig

    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += WORDS + SUFFIXES + ["op", "##ac", "au", "la", "##it", "r", "##ight"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=128)
    config.save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text())
    saved = {key: value for key, value in saved.items() if key not in ("transformers_version", "dtype", "torch_dtype")}
    (folder / "config.json").write_text(json.dumps(saved, indent=1, sort_keys=True) + "\n")


def _tiny_resnet():
    import torch.nn as nn
    from torchvision.models.resnet import Bottleneck, ResNet

    model = ResNet(Bottleneck, [1, 1, 1, 1])
    model.inplanes = 4
    model.conv1 = nn.Conv2d(3, 4, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(4)
    model.layer1 = model._make_layer(Bottleneck, 4, 1)
    model.layer2 = model._make_layer(Bottleneck, 8, 1, stride=2)
    model.layer3 = model._make_layer(Bottleneck, 16, 1, stride=2)
    model.layer4 = model._make_layer(Bottleneck, 32, 1, stride=2)
    model.fc = nn.Identity()
    return model


def _patch_upstream(bert_folder: Path):
    import transformers
    from gloria.models import cnn_backbones

    def tiny_bert(name, **kwargs):
        config = transformers.AutoConfig.from_pretrained(bert_folder, **kwargs)
        return transformers.AutoModel.from_config(config)

    transformers.AutoModel.from_pretrained = tiny_bert
    cnn_backbones.resnet_50 = lambda pretrained=True: (_tiny_resnet(), 128, 64)


def _randomise(model) -> None:
    """Batch-norm statistics and affine parameters away from their identity defaults; a wider BERT init."""
    import torch

    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            batch_norm = ".bn" in name or "downsample.1" in name
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif batch_norm and name.endswith("weight"):
                tensor.normal_(1.0, 0.2)
            elif batch_norm or (name.startswith("text_encoder") and "LayerNorm" not in name):
                tensor.normal_(0.0, 0.2)  # batch-norm biases and means; BERT weights


def _crops() -> list[Path]:
    from PIL import Image

    crops = []
    for source, box, name in (("00000001_000.png", (30, 12, 402, 480), "cxr_tall.png"),
                              ("00027426_000.png", (0, 90, 512, 430), "cxr_wide.png")):
        picture = Image.open(DATA / source).convert("L").crop(box)
        picture.save(HERE / name, optimize=True)
        crops.append(HERE / name)
    return crops


def _area_average(grey, size):
    """Exact area averaging rounded half up: the resize of ``openmedclip.models.families.gloria.preprocess``."""
    import numpy as np

    def weights(source, target):
        edges = np.arange(target + 1) * (source / target)
        pixels = np.arange(source)[None, :]
        overlap = np.clip(np.minimum(pixels + 1, edges[1:, None]) - np.maximum(pixels, edges[:-1, None]), 0, None)
        return overlap / overlap.sum(axis=1, keepdims=True)

    values = weights(grey.shape[0], size[0]) @ grey.astype(np.float64) @ weights(grey.shape[1], size[1]).T
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)


def _area_difference() -> None:
    """cv2 INTER_AREA vs exact area averaging (the project's resize) and PIL's BOX filter, on every real chest
    X-ray here (grey levels 0-255): down to upstream's long side 256, and up to 1.6 times the long side."""
    import cv2
    import numpy as np
    from PIL import Image

    worst: dict[str, int] = {}
    for path in sorted(DATA.rglob("*.png")) + sorted(DATA.rglob("*.jpg")):
        grey = cv2.imread(str(path), 0)
        rows, columns = grey.shape
        for kind, target in (("downscale", 256), ("upscale", int(max(rows, columns) * 1.6))):
            ratio = target / float(max(rows, columns))
            size = (target, int(float(columns) * ratio)) if rows >= columns else (int(float(rows) * ratio), target)
            theirs = cv2.resize(grey, size[::-1], interpolation=cv2.INTER_AREA).astype(int)
            box = np.asarray(Image.fromarray(grey).resize(size[::-1], Image.Resampling.BOX)).astype(int)
            for method, ours in (("area", _area_average(grey, size).astype(int)), ("PIL BOX", box)):
                difference = np.abs(ours - theirs)
                worst[f"{method} {kind}"] = max(worst.get(f"{method} {kind}", 0), int(difference.max()))
                print(f"{path.name} {kind} {grey.shape}->{size} {method}: max {difference.max()}, "
                      f"pixels differing {np.mean(difference > 0):.5f}")
    print("vs cv2 INTER_AREA, max |difference| in grey levels:", worst)


def main(upstream: Path) -> None:
    import torch
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    sys.path.insert(0, str(upstream))
    _install_stubs()
    _write_tiny_bert(HERE)
    _patch_upstream(HERE)
    from gloria import builder

    cfg = OmegaConf.load(upstream / "configs" / "chexpert_pretrain_config.yaml")
    cfg.model.text.bert_type = str(HERE)
    cfg.model.text.embedding_dim = 32
    cfg.model.vision.pretrained = False
    torch.manual_seed(SEED)
    model = builder.build_gloria_model(cfg)
    model.img_encoder.cfg = cfg
    _randomise(model)
    model.eval()

    crops = _crops()
    pixels = model.process_img([str(path) for path in crops], "cpu")
    grey = torch.round((pixels[:, 0] * 0.5 + 0.5) * 255)
    assert torch.equal(pixels, ((grey / 255 - 0.5) / 0.5)[:, None].expand(-1, 3, -1, -1)), "not 8-bit grey values"
    text = model.process_text(TEXTS, "cpu")
    with torch.no_grad():
        image_local, image_global = model.image_encoder_forward(pixels)
        word, sentence, sentences = model.text_encoder_forward(
            text["caption_ids"], text["attention_mask"], text["token_type_ids"])
        global_similarity = model.get_global_similarities(image_global, sentence)
        word_counts = [sent.index("[SEP]") - 1 for sent in sentences]
        local = model.get_local_similarities(image_local, word[LOCAL_TEXTS], [word_counts[i] for i in LOCAL_TEXTS])
        upstream_local = model.get_local_similarities(image_local, word[:2], text["cap_lens"][:2])
    both = (local + global_similarity[:, LOCAL_TEXTS]) / 2
    print("word counts", word_counts, "upstream cap_lens", text["cap_lens"])
    print("local similarity with upstream's character counts (first 2 texts):", upstream_local.tolist())

    golden = {
        "pixels_grey_u8": grey.to(torch.uint8),
        "image_global": image_global, "image_local": image_local,
        "text_global": sentence, "text_words": word,
        "global_similarity": global_similarity, "local_similarity": local, "both_similarity": both,
    }
    save_file({key: value.contiguous() for key, value in golden.items()}, str(HERE / "golden.safetensors"))
    inputs = {"texts": TEXTS, "token_ids": text["caption_ids"].tolist(), "word_counts": word_counts,
              "local_texts": LOCAL_TEXTS, "images": [path.name for path in crops]}
    (HERE / "inputs.json").write_text(json.dumps(inputs, indent=1) + "\n")
    _save_lightning_checkpoint(model, cfg)
    _area_difference()


def _save_lightning_checkpoint(model, cfg) -> None:
    """The layout PyTorch-Lightning 1.1 writes (``dump_checkpoint``), around upstream's model."""
    import numpy as np
    import torch
    from pytorch_lightning.callbacks.early_stopping import EarlyStopping
    from pytorch_lightning.callbacks.model_checkpoint import ModelCheckpoint

    state = OrderedDict(("gloria." + key, value) for key, value in model.state_dict().items())
    parameters = list(range(sum(1 for _ in model.parameters())))
    checkpoint = {
        "epoch": 0,
        "global_step": 0,
        "pytorch-lightning_version": "1.1.4",
        "callbacks": {
            ModelCheckpoint: {"monitor": "val_loss", "best_model_score": torch.tensor(1.2345),
                              "best_model_path": "./data/ckpt/epoch=0.ckpt", "current_score": torch.tensor(1.2345),
                              "dirpath": "./data/ckpt"},
            EarlyStopping: {"wait_count": 0, "stopped_epoch": 0, "best_score": torch.tensor(1.2345),
                            "patience": 10},
        },
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 5e-5, "betas": (0.5, 0.999), "eps": 1e-8,
                                                              "weight_decay": 1e-6, "amsgrad": False,
                                                              "params": parameters}]}],
        "lr_schedulers": [{"factor": 0.5, "patience": 5, "best": np.float64(1.2345), "num_bad_epochs": 0,
                           "mode": "min", "last_epoch": 0, "_last_lr": [5e-5]}],
        "native_amp_scaling_state": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                                     "growth_interval": 2000, "_growth_tracker": 0},
        "state_dict": state,
        "hparams_name": "hparams",
        "hyper_parameters": cfg,
        "hparams_type": type(cfg),
    }
    torch.save(checkpoint, HERE / "chexpert_resnet50.ckpt")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
