"""How far MedPix dev retrieval can go on what an image shows at a glance: its plane, modality and body region.

Run: ``uv run python benchmarks/medpix_field_ceiling.py [--model openmedclip-base] [--data ../shared/data]``.

A MedPix caption mostly names a finding ("1.6 x 1.8cm right middle lobe nodule"); a small model trained on 1,653
images learns the view (axial CT of the chest) far sooner than the finding. This prints R@1/5/10 both ways on the
dev split for the model's image features, and for "oracles" that replace each image's features by the model's text
features of a header built from that image's own metadata fields (``openmedclip.data.medpix.field_header``:
"Axial CT image (noncontrast) of the thorax (chest, pulmonary)."): an image tower that reads plane, modality and
location perfectly, and puts them where the text tower puts those words. A second kind of oracle puts each image at
the mean text feature of the train split's captions whose images have the same header (the header's own feature
when no train image has it): the best a tower could learn from the train captions by knowing the view alone. What an
oracle reaches is what knowing the view is worth through this text tower; beating it needs the finding.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch

from common import DEFAULT_DATA, markdown_table

if TYPE_CHECKING:
    from openmedclip.data.medpix import MedPix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="openmedclip-base")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the real data folder (../shared/data)")
    args = parser.parse_args()

    from openmedclip.data.medpix import MedPix
    from openmedclip.embed.engine import encode_images, encode_texts
    from openmedclip.models import load_model
    from openmedclip.tasks.retrieval import retrieval_metrics

    folder = args.data / "medpix2_traindev"
    dev = MedPix(folder, split="dev")
    captions, owner = [], []
    for i in range(len(dev.keys)):
        for caption in dev.captions(i):
            captions.append(caption)
            owner.append(i)

    loaded = load_model(args.model, device="cpu", precision="fp32")
    text = encode_texts(loaded, captions)
    image = encode_images(loaded, dev).features
    full = split_headers(dev, plane=True)
    header_features = encode_texts(loaded, full)
    centroids = header_centroids(loaded, folder, full, header_features)

    def renormalised_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(a + b, dim=-1)

    rows_of = {
        "model's image features": image,
        "oracle: header of plane, modality, location": header_features,
        "oracle: header of modality, location (no plane)": encode_texts(loaded, split_headers(dev, plane=False)),
        "oracle: mean of the train captions with the same header": centroids.features,
        "image features + oracle header (sum, renormalised)": renormalised_sum(image, header_features),
        "image features + mean of same-header train captions": renormalised_sum(image, centroids.features),
    }
    rows = []
    for name, features in rows_of.items():
        result = retrieval_metrics(features, text, owner, n_bootstrap=200, groups=dev.groups["case"])
        cells = [name]
        for direction in (result.text_to_image, result.image_to_text):
            cells += [f"{direction.recall[k].value:.3f}" for k in (1, 5, 10)]
        rows.append(cells)
    print(
        f"model {args.model}, fp32; MedPix 2.0 dev: {len(dev.keys)} images, {len(captions)} captions, "
        f"{len(set(full))} distinct headers, {centroids.seen} of them on train images"
    )
    print()
    columns = ["image features", "t→i R@1", "t→i R@5", "t→i R@10", "i→t R@1", "i→t R@5", "i→t R@10"]
    print(markdown_table(columns, rows))


def split_headers(source: MedPix, *, plane: bool) -> list[str]:
    """The field header of each image of a MedPix split, with or without its plane, from the source's metadata
    (the record's fields and its ``Description`` fields, as ``MedPix`` keeps them)."""
    from openmedclip.data.medpix import field_header

    headers = []
    for meta in source.metadata:
        description = meta if plane else {**meta, "Plane": None}
        headers.append(field_header({**meta, "Description": description}) or "")
    return headers


class Centroids(NamedTuple):
    features: torch.Tensor
    seen: int


def header_centroids(loaded, folder: Path, headers: list[str], header_features: torch.Tensor) -> Centroids:
    """Per dev header, the normalised mean text feature of the train captions whose image has that header."""
    from openmedclip.data.medpix import MedPix
    from openmedclip.embed.engine import encode_texts

    train = MedPix(folder, split="train")
    train_headers = split_headers(train, plane=True)
    by_header: dict[str, list[str]] = defaultdict(list)
    for i, header in enumerate(train_headers):
        by_header[header].extend(train.captions(i))
    wanted = sorted({h for h in headers if by_header.get(h)})
    means = {
        header: torch.nn.functional.normalize(encode_texts(loaded, by_header[header]).mean(0), dim=-1)
        for header in wanted
    }
    rows = [means.get(header, feature) for header, feature in zip(headers, header_features, strict=True)]
    return Centroids(torch.stack(rows), len(wanted))


if __name__ == "__main__":
    main()
