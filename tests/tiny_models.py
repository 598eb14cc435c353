"""Tiny, deterministic, offline CLIP models in the open_clip hub format, shared by every test folder.

Built with open_clip's own classes (not with openmedclip), so tests can compare our loader against them.
"""

from __future__ import annotations

import json
import shutil
from copy import deepcopy
from pathlib import Path

import torch
from safetensors.torch import save_file

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]

BIOMEDBERT = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
BIOMEDCLIP_REPO = "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"

_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORDS = """
a an the of and or with without in on at to from by for no not is are was were be been has have this that these
there which as left right bilateral upper lower middle lobe lobes base apex chest thorax lung lungs pleural
effusion effusions pneumothorax pneumonia consolidation opacity opacities atelectasis edema cardiomegaly heart
cardiac silhouette mediastinum mediastinal hilar hilum enlarged normal abnormal mild moderate severe small large
acute chronic stable unchanged new increased decreased finding findings impression x ray radiograph radiography
frontal lateral view views ap pa portable supine upright image images scan ct mri ultrasound mammogram mammography
breast mass masses nodule nodules calcification calcifications lesion lesions tumor tumour cancer carcinoma
benign malignant metastasis metastases fracture fractures bone bones spine vertebral rib ribs skull brain head
neck abdomen abdominal pelvis liver kidney kidneys renal spleen bowel colon stomach gallbladder pancreas bladder
vessel vessels aorta artery arteries vein veins blood flow tissue tissues cell cells nucleus nuclei stain stained
staining histology histopathology pathology biopsy slide microscopy microscopic magnification tumor grade gland
glands skin dermoscopy melanoma nevus retina retinal fundus optic disc diabetic retinopathy eye macula photo
photograph patient patients year old male female man woman child adult history evidence sign signs suggestive
consistent compatible likely possible probable suspicious concerning seen noted present absent clear free tube
tubes line lines catheter device devices pacemaker wire wires support surgical clips post status placement
covid viral bacterial infection inflammatory inflammation disease diseases tuberculosis fibrosis emphysema
airspace interstitial ground glass density air fluid level wall thickening diffuse focal patchy linear round
shows showing shown demonstrates demonstrating reveals revealing indicates indicating measuring measures cm mm
one two three first second type class label category
""".split()
_SUFFIXES = ["##s", "##es", "##ed", "##ing", "##al", "##ly", "##ic", "##ia"]
_PUNCTUATION = list(".,;:-()/%'\"")


def tiny_openclip_config() -> dict:
    """open_clip_config.json content: tiny ViT (32 px, patch 8) + open_clip text transformer (context 16)."""
    return {
        "model_cfg": {
            "embed_dim": 32,
            "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
        },
        "preprocess_cfg": {
            "mean": OPENAI_MEAN,
            "std": OPENAI_STD,
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    }


def tiny_biomedclip_config() -> dict:
    """open_clip_config.json with the keys of the real BiomedCLIP one; timm ``test_vit`` + a 2-layer BERT."""
    return {
        "model_cfg": {
            "embed_dim": 32,
            "vision_cfg": {
                "timm_model_name": "test_vit",
                "timm_model_pretrained": False,
                "timm_pool": "",
                "timm_proj": "linear",
                "image_size": 64,
            },
            "text_cfg": {
                "hf_model_name": BIOMEDBERT,
                "hf_tokenizer_name": BIOMEDBERT,
                "hf_proj_type": "mlp",
                "hf_pooler_type": "cls_last_hidden_state_pooler",
                "context_length": 32,
            },
        },
        "preprocess_cfg": {"mean": OPENAI_MEAN, "std": OPENAI_STD},
    }


def tiny_vocab() -> list[str]:
    """WordPiece vocabulary: BERT special tokens, then medical/common words, suffixes, digits, punctuation."""
    return _SPECIAL_TOKENS + sorted(set(_WORDS)) + _SUFFIXES + list("0123456789") + _PUNCTUATION


def tiny_bert_config(vocab_size: int) -> dict:
    """config.json of a 2-layer, 32-wide BERT (the text tower's HF config)."""
    return {
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 64,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
    }


def write_tiny_openclip_folder(folder: Path) -> Path:
    """Write open_clip_config.json + open_clip_model.safetensors of the tiny open_clip model; return folder."""
    import open_clip

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = tiny_openclip_config()
    torch.manual_seed(0)
    model = open_clip.model.CLIP(**deepcopy(config["model_cfg"]))
    _write_json(folder / "open_clip_config.json", config)
    save_file(_tensors(model.state_dict()), str(folder / "open_clip_model.safetensors"))
    return folder


def write_tiny_biomedclip_folder(folder: Path) -> Path:
    """Write a BiomedCLIP-shaped hub folder: config, BERT config.json, tokenizer files, weights; return folder.

    Weight keys look like the real BiomedCLIP ones (``visual.trunk.*``, ``visual.head.proj.weight``,
    ``text.transformer.*``, ``text.proj.*``), including the ``text.transformer.embeddings.position_ids``
    buffer that checkpoints saved with older transformers versions carry.
    """
    import open_clip

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocab()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    _write_json(folder / "config.json", tiny_bert_config(len(vocab)))
    _write_json(
        folder / "tokenizer_config.json",
        {"do_lower_case": True, "tokenizer_class": "BertTokenizer", "model_max_length": 1_000_000_000},
    )
    _write_json(
        folder / "special_tokens_map.json",
        {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
         "mask_token": "[MASK]"},
    )
    config = tiny_biomedclip_config()
    model_cfg = deepcopy(config["model_cfg"])
    model_cfg["text_cfg"].update(hf_model_name=str(folder), hf_model_pretrained=False)
    torch.manual_seed(0)
    model = open_clip.model.CustomTextCLIP(**model_cfg)
    state = _tensors(model.state_dict())
    state["text.transformer.embeddings.position_ids"] = torch.arange(64).unsqueeze(0)
    _write_json(folder / "open_clip_config.json", config)
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return folder


def install_in_hf_cache(cache: Path, repo_id: str, files_from: Path, revision: str = "abc123") -> Path:
    """Lay out ``files_from``'s files as a Hugging Face hub cache entry for ``repo_id``; return the snapshot."""
    repo_dir = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in Path(files_from).iterdir():
        if path.is_file():
            shutil.copy2(path, snapshot / path.name)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision, encoding="utf-8")
    return snapshot


def _tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone().contiguous() for key, value in state.items()}


def _write_json(path: Path, content: dict) -> None:
    path.write_text(json.dumps(content, indent=2), encoding="utf-8")


def assert_same_outputs(first, second) -> None:
    """Two loaded models give identical image and text features (e.g. a model and its saved copy)."""
    import numpy as np

    from openmedclip.embed import encode_images, encode_texts
    from openmedclip.io import MedicalImage

    rng = np.random.default_rng(0)
    images = [MedicalImage(rng.uniform(0, 255, (60, 50)).astype(np.float32), f"x{i}", meta={"bit_depth": 8})
              for i in range(2)]
    texts = ["left pleural effusion", "no acute cardiopulmonary findings."]
    assert torch.equal(encode_images(first, images, num_workers=0).features,
                       encode_images(second, images, num_workers=0).features)
    assert torch.equal(encode_texts(first, texts), encode_texts(second, texts))


def recorded_text_batches(loaded, monkeypatch, measure=lambda tokens: tokens.shape[0]) -> list:
    """``measure(tokens)`` (default: the batch size) of every token batch ``loaded.model.encode_text`` is called
    with from now on."""
    recorded: list = []
    encode = loaded.model.encode_text

    def recording(tokens: torch.Tensor) -> torch.Tensor:
        recorded.append(measure(tokens))
        return encode(tokens)

    monkeypatch.setattr(loaded.model, "encode_text", recording)
    return recorded


def assert_saved_folder_stands_alone(name: str, family: str, zoo: Path, folder: Path):
    """``save_model`` of registry model ``name`` into ``folder`` loads back with the published files (``zoo``)
    removed, as an openmedclip folder of ``family`` with the same outputs; returns the (original, reloaded) pair."""
    from openmedclip.models import load_model, save_model

    loaded = load_model(name, device="cpu")
    saved = save_model(loaded, folder)
    shutil.rmtree(zoo)
    again = load_model(saved, device="cpu")
    assert again.spec.family == family and again.spec.format == "openmedclip-folder"
    assert_same_outputs(loaded, again)
    return loaded, again
