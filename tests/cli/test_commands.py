"""Every command of ``openmedclip``: one real run on tiny offline models and data, and a usage error (exit 2, one
line, no traceback). ``COVERED`` must name every registered command, so a new command needs its tests here."""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys

import pytest
import yaml
from cli_support import assert_usage_error, python, write_pairs
from typer.main import get_command

from openmedclip.cli.app import app, command_names, run
from openmedclip.cli.options import EXTRAS, parse_window
from openmedclip.errors import InvalidInputError

COVERED = {
    "zeroshot": ("test_zeroshot_window_centre_width_and_preset", "test_zeroshot_bad_window_fails_before_loading",
                 "test_zeroshot_similarity_the_model_does_not_offer_is_a_usage_error"),
    "train": ("test_train_from_a_recipe_prints_the_summary", "test_train_usage_errors"),
    "eval": ("test_eval_then_report", "test_eval_usage_errors"),
    "report": ("test_eval_then_report", "test_report_usage_errors"),
    "shards": ("test_shards_from_a_table", "test_shards_usage_errors"),
    "export": ("test_export_fp16_folder_loads", "test_export_usage_errors"),
    "convert": ("test_convert_torchscript_for_plain_open_clip", "test_convert_usage_errors"),
    "models": ("test_models_lists_the_registry", "test_listing_commands_take_no_arguments"),
    "banks": ("test_banks_lists_each_bank", "test_listing_commands_take_no_arguments"),
    "inspect": ("test_inspect_window_centre_width_and_preset", "test_inspect_usage_errors"),
    "download": ("test_download_bundled_model", "test_download_usage_errors"),
    "heatmap": ("test_heatmap_writes_a_png_beside_the_image", "test_heatmap_usage_errors"),
}
"""command -> (a test running it, a test of its usage errors)."""


def test_every_command_has_tests():
    registered = set(get_command(app).commands)
    assert registered == set(command_names())
    assert registered == set(COVERED), "add the new command's tests to COVERED"
    for tests in COVERED.values():
        for name in tests:
            assert callable(globals().get(name)), f"{name} is not a test in this module"


def test_help_lists_every_command(cli):
    result = cli("--help")
    assert result.code == 0
    listed = re.findall(r"^  (\w+)\s", result.out.split("Commands:")[1], flags=re.MULTILINE)
    assert listed == command_names()
    for name in command_names():
        sub = cli(name, "--help")
        assert sub.code == 0 and f"Usage: openmedclip {name}" in sub.out


def test_no_command_shows_help_and_unknown_command_is_one_line(cli):
    bare = cli()
    assert bare.code == 2 and "Commands:" in bare.out + bare.err
    assert_usage_error(cli("zeroshoot"), "No such command", "zeroshot")


# --window: one parser for every command that has the option ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("40,400", (40.0, 400.0)),
        (" -600 , 1500 ", (-600.0, 1500.0)),
        ("1e2,2.5", (100.0, 2.5)),
        ("lung", (-600.0, 1500.0)),
        ("Soft_Tissue", (40.0, 400.0)),
        (None, None),
    ],
)
def test_parse_window(text, expected):
    assert parse_window(text) == expected


@pytest.mark.parametrize(
    "text", ["40", "40,", ",400", "40,abc", "40,0", "40,-5", "nan,400", "40,inf", "1,2,3", "lungs"]
)
def test_parse_window_rejects(text):
    with pytest.raises(InvalidInputError, match="--window"):
        parse_window(text)


BAD_WINDOWS = ["40,abc", "40,0", "1,2,3", "lungs"]


# zeroshot -------------------------------------------------------------------------------------------------------


def test_zeroshot_window_centre_width_and_preset(cli, tiny_model_dir, image_folder):
    for window in ("40,400", "-600,1500", "lung"):
        result = cli(
            "zeroshot", image_folder / "img0.png", "-l", "a,b", "-m", tiny_model_dir, "--window", window, "--json"
        )
        assert result.code == 0, result.err
        assert [p["item"] for p in json.loads(result.out)["predictions"]] == [str(image_folder / "img0.png")]


@pytest.mark.parametrize("window", BAD_WINDOWS)
def test_zeroshot_bad_window_fails_before_loading(cli, image_folder, window):
    # the model does not exist: the window is checked first
    result = cli("zeroshot", image_folder, "-l", "a,b", "-m", "no-such-model-xyz", "--window", window)
    assert_usage_error(result, "--window")


def test_zeroshot_similarity_the_model_does_not_offer_is_a_usage_error(cli, tiny_model_dir, image_folder):
    result = cli("zeroshot", image_folder / "img0.png", "-l", "a,b", "-m", tiny_model_dir, "--similarity", "local")
    assert_usage_error(result, "similarity 'local'", "offers global")


# inspect --------------------------------------------------------------------------------------------------------


def test_inspect_window_centre_width_and_preset(cli, image_folder):
    image = image_folder / "img0.png"
    plain = cli("inspect", image)
    assert plain.code == 0 and "shape (40, 44)" in plain.out
    centre_width = cli("inspect", image, "--window", "40,400")
    assert centre_width.code == 0 and "window (40.0, 400.0)" in centre_width.out
    preset = cli("inspect", image, "--window", "lung")
    assert preset.code == 0 and "window (-600.0, 1500.0)" in preset.out


@pytest.mark.parametrize("window", BAD_WINDOWS)
def test_inspect_usage_errors(cli, image_folder, tmp_path, window):
    assert_usage_error(cli("inspect", image_folder / "img0.png", "--window", window), "--window")
    assert_usage_error(cli("inspect", tmp_path / "nope.png"), "nope.png")
    assert_usage_error(cli("inspect"), "Missing argument")


# train ----------------------------------------------------------------------------------------------------------


@pytest.fixture()
def recipe_file(tmp_path, tiny_model_dir, pairs_table):
    recipe = {
        "model": str(tiny_model_dir),
        "datasets": [{"type": "table", "path": str(pairs_table)}],
        "epochs": 2,
        "batch_size": 4,
        "lr": 1e-3,
        "out_dir": str(tmp_path / "run"),
        "progress": False,
        "device": "cpu",
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def test_train_from_a_recipe_prints_the_summary(cli, recipe_file, tmp_path):
    result = cli("train", "--recipe", recipe_file, "--epochs", "1", "--out_dir", tmp_path / "other")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["epoch"] == 1 and summary["step"] == 2 and isinstance(summary["last_loss"], float)
    assert "losses" not in summary
    assert summary["checkpoint"].startswith(str(tmp_path / "other"))


class _Summary:
    losses = (0.5, 0.25)

    def to_dict(self):
        return {"step": 2, "losses": list(self.losses)}


def test_train_summary_is_printed_by_the_first_process_only(cli, monkeypatch):
    import openmedclip.train.cli

    monkeypatch.setattr(openmedclip.train.cli, "run_from_cli", lambda recipe, overrides: _Summary())
    monkeypatch.setenv("RANK", "0")
    first = cli("train", "--lr", "1")
    assert first.code == 0 and json.loads(first.out) == {"step": 2, "last_loss": 0.25}
    monkeypatch.setenv("RANK", "1")
    other = cli("train", "--lr", "1")
    assert other.code == 0 and other.out == ""


def test_train_usage_errors(cli, tmp_path):
    assert_usage_error(cli("train", "stray"), "unexpected argument 'stray'")
    assert_usage_error(cli("train", "--recipe", tmp_path / "missing.yaml"), "recipe not found")


def test_python_m_openmedclip_train_is_the_same_command():
    """Help, errors and exit codes of ``python -m openmedclip.train`` are those of ``openmedclip train``."""
    for args, code in ((["--help"], 0), (["stray"], 2)):
        module = python("-m", "openmedclip.train", *args)
        command = python("-m", "openmedclip.cli", "train", *args)
        assert (module.returncode, module.stdout, module.stderr) == (command.returncode, command.stdout, command.stderr)
        assert module.returncode == code and "Traceback" not in module.stderr
        if code == 0:
            assert "Usage: openmedclip train" in module.stdout


def test_train_cli_main_returns_the_exit_code(tmp_path, capsys):
    from openmedclip.train.cli import main

    assert main(["--recipe", str(tmp_path / "missing.yaml")]) == 2
    assert "recipe not found" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "Usage: openmedclip train" in capsys.readouterr().out


# eval and report ------------------------------------------------------------------------------------------------

SUITE = """
name: tiny-cli
datasets:
  pairs:
    source: {type: table, path: pairs/captions.jsonl, label_col: modality}
    classes: {CT: computed tomography, MR: magnetic resonance imaging}
    prompts: {templates: ["a {} scan."]}
    tasks: [zeroshot, retrieval]
"""


def test_eval_then_report(cli, tmp_path, tiny_model_dir):
    write_pairs(tmp_path / "data" / "pairs")
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    out = tmp_path / "results"
    result = cli(
        "eval",
        "--suite",
        suite,
        "-m",
        tiny_model_dir,
        "--out",
        out,
        "--data-root",
        tmp_path / "data",
        "--bootstrap",
        "5",
        "--limit",
        "8",
        "--no-cache",
    )
    assert result.code == 0, result.err
    assert "wrote 2 result file(s)" in result.err
    assert len(list(out.rglob("*.json"))) >= 2
    report = cli("report", out, "--no-plots")
    assert report.code == 0, report.err
    assert report.out.split() == [str(out / "report.md"), str(out / "report.csv"), str(out / "metrics.csv")]
    assert "pairs" in (out / "report.md").read_text(encoding="utf-8")


def test_eval_usage_errors(cli, tmp_path, tiny_model_dir):
    common = ["--suite", "local", "-m", tiny_model_dir, "--out", tmp_path / "out"]
    assert_usage_error(cli("eval", *common, "--k-shots", "1,x"), "--k-shots")
    assert_usage_error(cli("eval", *common, "--seeds", "a"), "--seeds")
    assert_usage_error(cli("eval", "-m", tiny_model_dir, "--out", tmp_path / "out"), "Missing option", "--suite")
    assert_usage_error(cli("eval", *common, "--bootstrap", "-1"), "--bootstrap")


def test_report_usage_errors(cli, tmp_path):
    assert_usage_error(cli("report"), "Missing argument")
    (tmp_path / "empty").mkdir()
    assert_usage_error(cli("report", tmp_path / "empty", "--no-plots"))


# shards ---------------------------------------------------------------------------------------------------------


def test_shards_from_a_table(cli, pairs_table, tmp_path):
    result = cli("shards", pairs_table, tmp_path / "shards", "--maxcount", "5")
    assert result.code == 0, result.err
    assert result.out.strip() == f"wrote 2 shard(s) with 8 sample(s) to {tmp_path / 'shards'}"
    assert len(list((tmp_path / "shards").glob("*.tar"))) == 2


def test_shards_usage_errors(cli, pairs_table, tmp_path):
    assert_usage_error(cli("shards", pairs_table, tmp_path / "s", "--option", "split"), "--option", "KEY=VALUE")
    assert_usage_error(cli("shards", pairs_table, tmp_path / "s", "--maxcount", "0"), "--maxcount")
    assert_usage_error(cli("shards", pairs_table), "Missing argument")


# export ---------------------------------------------------------------------------------------------------------


def test_export_fp16_folder_loads(cli, tiny_model_dir, tmp_path):
    from openmedclip.models import load_model

    result = cli("export", tiny_model_dir, tmp_path / "exported", "--dtype", "fp16")
    assert result.code == 0, result.err
    assert result.out.startswith("wrote ") and (tmp_path / "exported").is_dir()
    assert load_model(tmp_path / "exported", device="cpu") is not None


def test_export_usage_errors(cli, tiny_model_dir, tmp_path):
    assert_usage_error(cli("export", tiny_model_dir, tmp_path / "x", "--dtype", "int8"), "--dtype", "int8")
    assert_usage_error(cli("export", "no-such-model-xyz", tmp_path / "x"), "no-such-model-xyz")


def test_convert_torchscript_for_plain_open_clip(cli, tmp_path, monkeypatch):
    """OpenAI's TorchScript layout -> a hub folder that open_clip's own loader reads, with the same features."""
    import json
    import warnings

    import open_clip
    import torch

    from openmedclip.models import load_model
    from openmedclip.models.families.open_clip.catalog import EXTRA_ARCHITECTURES
    from tiny_models import tiny_openclip_config

    monkeypatch.setitem(EXTRA_ARCHITECTURES, "Tiny-TS", tiny_openclip_config()["model_cfg"])
    torch.manual_seed(5)
    model = open_clip.model.CLIP(**tiny_openclip_config()["model_cfg"]).eval()
    model.register_buffer("input_resolution", torch.tensor(32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(model), str(tmp_path / "ViT-Tiny.pt"))
    (tmp_path / "arch").mkdir()
    (tmp_path / "arch" / "open_clip_config.json").write_text(json.dumps(tiny_openclip_config()), encoding="utf-8")
    (tmp_path / "ViT-Tiny.pt").rename(tmp_path / "arch" / "ViT-Tiny.pt")
    result = cli("convert", tmp_path / "arch" / "ViT-Tiny.pt", "--to", tmp_path / "hub")
    assert result.code == 0, result.err
    reference, _ = open_clip.create_model_from_pretrained(f"local-dir:{tmp_path / 'hub'}")
    ours = load_model(tmp_path / "arch" / "ViT-Tiny.pt", device="cpu")
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(reference.eval().encode_image(pixels), ours.model.encode_image(pixels), atol=1e-6)
        assert torch.allclose(model.encode_image(pixels), ours.model.encode_image(pixels), atol=1e-6)


def test_convert_usage_errors(cli, tiny_model_dir, tmp_path):
    assert_usage_error(cli("convert", tiny_model_dir, "--to", tmp_path / "x", "--dtype", "int4"), "--dtype")
    assert_usage_error(cli("convert", "no-such-model-xyz", "--to", tmp_path / "x"), "no-such-model-xyz")
    assert cli("convert", tiny_model_dir).code == 2  # --to is required


# models and banks -----------------------------------------------------------------------------------------------


def test_models_lists_the_registry(cli, monkeypatch, tmp_path):
    from openmedclip.models import DEFAULT_MODEL, list_models
    from openmedclip.models.registry import registry

    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "400")
    result = cli("models")
    assert result.code == 0
    rows = {line.split("│")[1].strip(): line for line in result.out.splitlines() if line.count("│") > 5}
    assert set(registry()) <= set(rows)
    assert "yes" in rows[DEFAULT_MODEL] and "ships with openmedclip" in rows[DEFAULT_MODEL]
    assert "not found" in rows["biomedclip"] and "huggingface.co/microsoft/BiomedCLIP" in rows["biomedclip"]
    assert "CC BY-NC 4.0" in rows["unimed/vit-b16"] and "336 px" in rows["unimed/vit-l14-base-text"]
    assert "ViT-B-16" not in rows and result.out.count("architectures (random weights") == 1
    names = cli("models", "--names")
    assert names.code == 0 and names.out.splitlines() == list(list_models())


def test_banks_lists_each_bank(cli):
    from openmedclip.prompts import list_banks, load_bank

    result = cli("banks")
    assert result.code == 0
    lines = result.out.splitlines()
    assert [line.split(" ")[0] for line in lines] == list(list_banks())
    first = load_bank(list_banks()[0])
    assert all(name in lines[0] for name in first.class_names)


@pytest.mark.parametrize("command", ["models", "banks"])
def test_listing_commands_take_no_arguments(cli, command):
    assert_usage_error(cli(command, "extra"), "unexpected extra argument")


# optional dependencies ------------------------------------------------------------------------------------------


@pytest.fixture()
def block(monkeypatch):
    """``block(*packages, reload=(...))``: make those packages look uninstalled (``None`` in ``sys.modules``, as
    Python's own tests do) and forget the ``reload`` modules, so that they import them again."""

    def apply(*packages: str, reload: tuple[str, ...] = ()) -> None:
        for name in list(sys.modules):
            if name.partition(".")[0] in packages or name in reload:
                monkeypatch.delitem(sys.modules, name)
        for package in packages:
            monkeypatch.setitem(sys.modules, package, None)

    return apply


def test_extras_match_the_package_metadata():
    requires = [re.sub(r"\s+", "", r).replace('"', "'") for r in importlib.metadata.requires("openmedclip") or []]
    for module, extra in EXTRAS.items():
        assert any(r.startswith(module) and f"extra=='{extra}'" in r for r in requires), (module, extra, requires)


def test_core_commands_work_without_the_extras(cli, block, tiny_model_dir, image_folder, tmp_path):
    block(*EXTRAS)
    image = image_folder / "img0.png"
    runs = [
        ("zeroshot", image, "-l", "a,b", "-m", tiny_model_dir, "--json"),
        ("inspect", image, "--window", "lung"),
        ("models",),
        ("banks",),
        ("export", tiny_model_dir, tmp_path / "exported"),
    ]
    for args in runs:
        result = cli(*args)
        assert result.code == 0, (args, result.err)


def test_shards_without_webdataset_names_the_extra(cli, block, pairs_table, tmp_path):
    block("webdataset")
    assert_usage_error(cli("shards", pairs_table, tmp_path / "s"), "webdataset", "pip install 'openmedclip[train]'")


def test_report_plots_without_matplotlib_names_the_extra(cli, block, tmp_path):
    block("matplotlib", reload=("openmedclip.eval.plots",))
    assert_usage_error(cli("report", tmp_path, "--plots"), "matplotlib", "pip install 'openmedclip[plots]'")


def test_medmnist_file_without_medmnist_names_the_extra(cli, block, tmp_path):
    import numpy as np

    arrays = {
        f"{split}_{kind}": np.zeros((2, 28, 28) if kind == "images" else (2, 1), np.uint8)
        for split in ("train", "val", "test")
        for kind in ("images", "labels")
    }
    np.savez(tmp_path / "pneumoniamnist.npz", **arrays)
    block("medmnist")
    result = cli("shards", tmp_path / "pneumoniamnist.npz", tmp_path / "s")
    assert_usage_error(result, "medmnist", "pip install 'openmedclip[data]'")


def test_other_missing_modules_still_raise(monkeypatch):
    import openmedclip.cli.app as cli_app

    def broken() -> None:
        raise ModuleNotFoundError("No module named 'not_an_extra'", name="not_an_extra")

    monkeypatch.setattr(cli_app, "get_command", lambda app: type("C", (), {"main": lambda *a, **k: broken()})())
    with pytest.raises(ModuleNotFoundError):
        run(["models"])


# download: the runs against a loopback hub are in test_download_cli.py --------------------------------------------


def test_download_bundled_model(cli):
    result = cli("download", "openmedclip-base")
    assert result.code == 0 and "ships with openmedclip" in result.out and "nothing to download" in result.out


def test_download_usage_errors(cli, tmp_path):
    assert_usage_error(cli("download"), "Missing argument 'name'")
    assert_usage_error(cli("download", "biomedclip", "--to", tmp_path, "--cache"), "--to", "--cache")
    assert_usage_error(cli("download", "biomedclp"), "unknown model", "Close matches: biomedclip")


def test_heatmap_writes_a_png_beside_the_image(cli, image_folder):
    from PIL import Image

    image = sorted(image_folder.glob("*.png"))[0]
    result = cli("heatmap", image, "--text", "pleural effusion")
    assert result.code == 0, result.err
    written = image.with_name(image.stem + "_heatmap.png")
    assert f"{written}: 'pleural effusion' on {image.name}" in result.out and "peak cosine" in result.out
    with Image.open(written) as png:
        assert png.format == "PNG"


def test_heatmap_usage_errors(cli, image_folder, tmp_path):
    image = sorted(image_folder.glob("*.png"))[0]
    assert_usage_error(cli("heatmap", image), "Missing option '--text'")
    assert_usage_error(cli("heatmap", image, "--text", " "), "empty")
    assert_usage_error(cli("heatmap", image, "--text", "x", "--smooth", "-1"), "--smooth")
    assert_usage_error(cli("heatmap", image, "--text", "x", "--window", "lungs"), "--window")
    missing = cli("heatmap", tmp_path / "nope.png", "--text", "x")
    assert missing.code == 2 and "nope.png" in missing.err and "Traceback" not in missing.err


@pytest.mark.realdata
@pytest.mark.parametrize("source", ["txv_test_cxr/Fake_MONOHR1.dcm", "txv_test_cxr/00000001_000.png", "nibabel"])
def test_heatmap_maps_dicom_nifti_and_png_sources(cli, shared_data, tmp_path, source):
    from pathlib import Path

    import nibabel
    from PIL import Image

    from openmedclip.io import read_image

    path = Path(nibabel.__file__).parent / "tests" / "data" / "example4d.nii.gz" if source == "nibabel" \
        else shared_data / source
    out = tmp_path / "map.png"
    result = cli("heatmap", path, "--text", "pleural effusion", "-o", out)
    assert result.code == 0, result.err
    rows, columns = read_image(path).pixels.shape[:2]
    assert f"(of {rows}x{columns})" in result.out
    with Image.open(out) as png:
        assert png.format == "PNG" and min(png.size) > 100
