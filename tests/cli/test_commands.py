"""Every command of ``openmedclip``: one real run on tiny offline models and data, and a usage error (exit 2, one
line, no traceback). ``COVERED`` must name every registered command, so a new command needs its tests here."""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys
from pathlib import Path

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
    "index": ("test_index_build_then_search", "test_index_and_search_usage_errors"),
    "search": ("test_index_build_then_search", "test_index_and_search_usage_errors"),
    "audit": ("test_audit_command", "test_audit_usage_errors"),
    "serve": ("test_serve_answers_over_http_until_stopped", "test_serve_usage_errors"),
    "demo": ("test_demo_serves_the_page", "test_demo_usage_errors"),
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


def test_zeroshot_window_centre_width_and_preset(cli, tiny_model_dir, ct_dicom):
    for window in ("40,400", "-600,1500", "lung"):
        result = cli("zeroshot", ct_dicom, "-l", "a,b", "-m", tiny_model_dir, "--window", window, "--json")
        assert result.code == 0, result.err
        assert [p["item"] for p in json.loads(result.out)["predictions"]] == [str(ct_dicom)]


def test_zeroshot_window_on_data_it_does_not_fit(cli, tiny_model_dir, image_folder, ct_dicom):
    png = image_folder / "img0.png"
    alone = cli("zeroshot", png, "-l", "a,b", "-m", tiny_model_dir, "--window", "lung")
    assert_usage_error(alone, "--window lung", "CT in Hounsfield units", "8-bit PNG", "--force-window")
    mixed = cli("zeroshot", png, ct_dicom, "-l", "a,b", "-m", tiny_model_dir, "--window", "lung", "--json")
    assert mixed.code == 1 and f"skipped {png}: a window applies only to CT" in mixed.err
    assert [p["item"] for p in json.loads(mixed.out)["predictions"]] == [str(ct_dicom)]
    forced = cli("zeroshot", png, "-l", "a,b", "-m", tiny_model_dir, "--window", "lung", "--force-window")
    assert forced.code == 0 and forced.error_lines == [
        f"warning: {png}: window applied anyway, but a window applies only to CT in Hounsfield units; this is an "
        "8-bit PNG image"
    ]


@pytest.mark.parametrize("window", BAD_WINDOWS)
def test_zeroshot_bad_window_fails_before_loading(cli, image_folder, window):
    # the model does not exist: the window is checked first
    result = cli("zeroshot", image_folder, "-l", "a,b", "-m", "no-such-model-xyz", "--window", window)
    assert_usage_error(result, "--window")


def test_zeroshot_similarity_the_model_does_not_offer_is_a_usage_error(cli, tiny_model_dir, image_folder):
    result = cli("zeroshot", image_folder / "img0.png", "-l", "a,b", "-m", tiny_model_dir, "--similarity", "local")
    assert_usage_error(result, "similarity 'local'", "offers global")


# inspect --------------------------------------------------------------------------------------------------------


def test_inspect_window_centre_width_and_preset(cli, image_folder, ct_dicom):
    plain = cli("inspect", image_folder / "img0.png")
    assert plain.code == 0 and "shape (40, 44)" in plain.out
    centre_width = cli("inspect", ct_dicom, "--window", "40,400")
    assert centre_width.code == 0 and "window (40.0, 400.0)" in centre_width.out
    preset = cli("inspect", ct_dicom, "--window", "lung")
    assert preset.code == 0 and "window (-600.0, 1500.0)" in preset.out
    assert_usage_error(cli("inspect", image_folder / "img0.png", "--window", "lung"), "img0.png", "8-bit PNG")


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
    assert not (tmp_path / "exported" / "training_manifest.json.gz").exists()
    builtin = load_model("openmedclip-base", device="cpu")
    assert cli("export", "openmedclip-base", tmp_path / "base").code == 0
    shipped = Path(builtin.spec.folder) / "training_manifest.json.gz"
    assert (tmp_path / "base" / shipped.name).read_bytes() == shipped.read_bytes()


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
    assert "ViT-B-16" not in rows and result.out.count("architectures with no weights here (random") == 1
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
    distributions = importlib.metadata.packages_distributions()
    for module, extra in EXTRAS.items():
        names = [name.lower() for name in distributions.get(module, [module])]
        assert any(r.lower().startswith(tuple(names)) and f"extra=='{extra}'" in r for r in requires), (
            module, extra, requires)


def test_core_commands_work_without_the_extras(cli, block, tiny_model_dir, image_folder, ct_dicom, tmp_path):
    block(*EXTRAS)
    image = image_folder / "img0.png"
    runs = [
        ("zeroshot", image, "-l", "a,b", "-m", tiny_model_dir, "--json"),
        ("inspect", ct_dicom, "--window", "lung"),
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
    assert_usage_error(cli("download"), "Missing argument 'NAME'")
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


# demo: the page itself is driven in a browser in tests/serve/test_demo.py ------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_demo_serves_the_page(tiny_model_dir):
    import os
    import select
    import signal
    import subprocess
    import urllib.request

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "openmedclip.cli", "demo", "-m", str(tiny_model_dir), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        # a shell's background job inherits SIGINT ignored, and Python then never raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        ready, _, _ = select.select([server.stdout], [], [], 90)
        started = server.stdout.readline() if ready else "no line in 90 s"
        assert started.startswith(f"openmedclip demo on http://127.0.0.1:{port}/ with {tiny_model_dir}"), started
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert page.status == 200 and "<html" in page.read().decode().lower()
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl+C
        _, err = server.communicate(timeout=90)
    assert server.returncode == 0, err
    assert "Traceback" not in err


def test_demo_usage_errors(cli, block, tiny_model_dir, tmp_path):
    import socket

    assert_usage_error(cli("demo", "--port", "0"), "--port")
    assert_usage_error(cli("demo", "--port", "65536"), "--port")
    assert_usage_error(cli("demo", "-m", "no-such-model-xyz"), "no-such-model-xyz")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_usage_error(cli("demo", "-m", tiny_model_dir, "--port", port), f"127.0.0.1:{port}", "--port")
    pytest.importorskip("openmedclip.index", reason="the index package (openmedclip.index) is not installed")
    (tmp_path / "not-an-index").mkdir()
    assert_usage_error(cli("demo", "-m", tiny_model_dir, "--index", tmp_path / "not-an-index"), "not-an-index")
    block("gradio")
    assert_usage_error(cli("demo"), "gradio is not installed", "pip install 'openmedclip[demo]'")


# serve ----------------------------------------------------------------------------------------------------------


def test_serve_answers_over_http_until_stopped(image_folder):
    import os
    import signal
    import socket
    import subprocess
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OPENMEDCLIP_SERVE_TOKEN": "t0ken"}
    server = subprocess.Popen(
        [sys.executable, "-m", "openmedclip.cli", "serve", "--port", str(port), "--root", str(image_folder)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        health = None
        deadline = time.monotonic() + 90
        while health is None and server.poll() is None and time.monotonic() < deadline:
            try:
                health = httpx.get(f"{url}/health", timeout=5).json()
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None, server.stderr.read() if server.poll() is not None else "no answer in 90 s"
        assert health["status"] == "ok" and health["loaded_models"] == ["openmedclip-base"]
        question = {"path": "img0.png", "labels": "a,b"}
        assert httpx.post(f"{url}/zeroshot", data=question).status_code == 401  # the token came from the environment
        answer = httpx.post(f"{url}/zeroshot", data=question, headers={"Authorization": "Bearer t0ken"}, timeout=30)
        assert answer.status_code == 200 and set(answer.json()["probabilities"]) == {"a", "b"}
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl+C
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert f"serving openmedclip-base on {url}" in err and "Application shutdown complete" in err
    assert "Traceback" not in err


def test_serve_usage_errors(cli, tmp_path):
    import socket

    assert_usage_error(cli("serve", "--port", "0"), "--port")
    assert_usage_error(cli("serve", "--port", "65536"), "--port")
    assert_usage_error(cli("serve", "--root", tmp_path / "nope"), "nope is not an existing folder")
    assert_usage_error(cli("serve", "--max-concurrency", "0"), "max_concurrency must be a positive whole number")
    assert_usage_error(cli("serve", "--max-upload-mb", "-1"), "max_upload_mb must be a positive number")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_usage_error(cli("serve", "--port", port), f"cannot listen on 127.0.0.1:{port}")
    pytest.importorskip("openmedclip.index", reason="the index package (openmedclip.index) is not installed")
    (tmp_path / "not-an-index").mkdir()
    assert_usage_error(cli("serve", "--index", tmp_path / "not-an-index"), "not-an-index")


def test_audit_command(cli, tmp_path):
    from duplicate_images import texture, write_classes

    pixels = texture(3)
    write_classes(tmp_path / "data", {"a": [("one", pixels)], "b": [("two", pixels), ("three", texture(4))]})
    result = cli("audit", str(tmp_path / "data"), "--out", str(tmp_path / "out"))
    assert result.code == 0, result.err
    assert re.search(r"\| data \| 3 \| 2 \| 2 \|", result.out)
    assert "Copies with different labels" in result.out
    assert (tmp_path / "out" / "audit.json").is_file() and (tmp_path / "out" / "closest_pairs.png").is_file()


def test_audit_usage_errors(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENMEDCLIP_DATA", raising=False)
    assert_usage_error(cli("audit"), "give data sources")
    assert_usage_error(cli("audit", "--suite", "local"), "--data-root")
    assert_usage_error(cli("audit", str(tmp_path / "missing.npz")), "missing.npz")
    assert cli("audit", str(tmp_path), "--near-distance", "70").code == 2


def test_eval_item_bootstrap_and_exclude_seen_options(cli, tmp_path, tiny_model_dir):
    write_pairs(tmp_path / "data" / "pairs")
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: grouped\ndatasets:\n  pairs:\n    source: {type: table, path: pairs/captions.jsonl}\n"
                     "    tasks: [retrieval]\n    groups: modality\n")
    common = ["eval", "--suite", suite, "-m", tiny_model_dir, "--data-root", tmp_path / "data", "--bootstrap", "5"]
    units = {}
    for flags in ([], ["--item-bootstrap", "--exclude-seen"]):
        out = tmp_path / ("results" + "".join(flags))
        result = cli(*common, "--out", out, *flags)
        assert result.code == 0, result.err
        payload = json.loads(next(out.glob("[!.]*/pairs/zeroshot_retrieval.json")).read_text())
        assert payload["options"]["exclude_seen"] is bool(flags) and payload["contamination"]["checked"] is False
        units[bool(flags)] = payload["resampling"]
    assert units == {False: {"unit": "modality", "n_units": 2}, True: {"unit": "item", "n_units": 8}}
    assert "--exclude-seen" in cli("eval", "--help").out and "--item-bootstrap" in cli("eval", "--help").out


# index and search: the library is tested in tests/index ---------------------------------------------------------


def test_index_build_then_search(cli, tiny_model_dir, image_folder, tmp_path):
    (image_folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    out = tmp_path / "idx"
    build = ("index", "build", image_folder, "--out", out, "-m", tiny_model_dir, "--kind", "flat")
    first = cli(*build)
    assert first.code == 1 and "skipped broken.png" in first.err
    assert "6 file(s) indexed (flat" in first.out
    assert "6 added, 0 changed, 0 removed, 0 unchanged, 1 failed" in first.out
    (image_folder / "broken.png").unlink()
    second = cli(*build)
    assert second.code == 0, second.err
    assert "0 added, 0 changed, 0 removed, 6 unchanged, 0 failed" in second.out
    found = cli("search", out, "chest x-ray", "-k", "3", "--json")
    assert found.code == 0, found.err
    payload = json.loads(found.out)
    assert payload["model"] == str(tiny_model_dir) and payload["query"] == {"text": "chest x-ray"}
    scores = [hit["score"] for hit in payload["hits"]]
    assert [hit["rank"] for hit in payload["hits"]] == [1, 2, 3] and scores == sorted(scores, reverse=True)
    same = cli("search", out, "--image", image_folder / "sub" / "img1.png", "-k", "1", "--json")
    hit = json.loads(same.out)["hits"][0]
    assert hit["path"] == "sub/img1.png" and abs(hit["score"] - 1) < 1e-5 and hit["metadata"]["format"] == "png"
    table = cli("search", out, "effusion", "--where", "format=png", "--where", "columns=48", "-k", "9")
    assert table.code == 0 and "4 hit(s)" in table.out and "sub/img1.png" in table.out
    assert json.loads(cli("search", out, "x", "--where", "modality=CT", "--json").out)["hits"] == []


def test_index_and_search_usage_errors(cli, block, tiny_model_dir, image_folder, tmp_path):
    out = tmp_path / "idx"
    build = ("index", "build", image_folder, "--out", out, "-m", tiny_model_dir)
    assert_usage_error(cli("index", "build", tmp_path / "missing", "--out", out), "missing", "no such folder")
    assert_usage_error(cli(*build, "--kind", "annoy"), "unknown index kind 'annoy'", "flat, ivf, hnsw")
    assert_usage_error(cli("index", "build", image_folder), "Missing option", "--out")
    assert not out.exists()
    (tmp_path / "plain").mkdir()
    assert_usage_error(cli("search", tmp_path / "plain", "x"), "plain", "not an openmedclip index")
    assert cli(*build).code == 0
    assert_usage_error(cli("search", out, "x", "--where", "modality"), "--where", "KEY=VALUE")
    assert_usage_error(cli("search", out, "x", "--where", "colour=red"), "unknown filter key", "allowed: format")
    assert_usage_error(cli("search", out, "x", "--where", "rows=tall"), "rows='tall'")
    assert_usage_error(cli("search", out), "TEXT", "--image")
    assert_usage_error(cli("search", out, "x", "--image", image_folder / "img0.png"), "TEXT", "--image")
    assert_usage_error(cli("search", out, "x", "-k", "0"), "-k")
    block("faiss")
    assert_usage_error(cli("search", out, "x"), "faiss", "pip install 'openmedclip[index]'")
    assert_usage_error(cli(*build), "faiss", "pip install 'openmedclip[index]'")
