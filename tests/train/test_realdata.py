"""The shipped smoke recipe's pipeline on the real MedPix 2.0 subset (with the tiny model, to stay fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

from openmedclip.train import load_recipe, train

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.realdata
def test_tiny_smoke_recipe_runs_on_medpix(shared_data, tiny_model_dir, tmp_path):
    medpix = str(shared_data / "medpix2_traindev")
    overrides = {
        "model": str(tiny_model_dir), "datasets.0.path": medpix, "val_datasets.0.path": medpix,
        "epoch_size": 32, "batch_size": 8, "num_workers": 0, "out_dir": str(tmp_path), "progress": False,
    }
    summary = train(load_recipe(REPO / "configs" / "train" / "tiny-smoke.yaml", overrides))
    assert summary.step == 4 and len(summary.losses) == 4
    metrics = summary.validation[-1]["metrics"]["medpix2-dev"]
    recalls = {f"{kind}_retrieval_recall@{k}" for kind in ("image", "text") for k in (1, 5, 10)}
    assert set(metrics) == recalls | {"n_images", "n_skipped"}
    assert 0 <= metrics["text_retrieval_recall@1"] <= metrics["text_retrieval_recall@10"] <= 1
