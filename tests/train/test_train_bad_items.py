"""Bad training input: unreadable images mid-epoch (left out, logged, counted, a limit), bad resume states, help."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from openmedclip.cli.app import run
from openmedclip.models import load_model
from openmedclip.train import load_recipe, train
from openmedclip.train.checkpoint import STATE_FILE, latest_checkpoint, load_state
from openmedclip.train.cli import main
from openmedclip.train.log import read_log
from openmedclip.train.loop import TooManyBadItemsError

TRUNCATED, EMPTY = "img/003.png", "img/010.png"


def copy_pairs(toy_table: Path, folder: Path, n: int = 32) -> Path:
    """The first `n` of the 32 toy pairs, copied into `folder`; returns their table."""
    shutil.copytree(toy_table.parent, folder)
    table = folder / toy_table.name
    lines = table.read_text(encoding="utf-8").splitlines(keepends=True)
    table.write_text("".join(lines[:n]), encoding="utf-8")
    return table


def spoil(folder: Path) -> None:
    """Truncate one image of a toy table's folder and empty another."""
    data = (folder / TRUNCATED).read_bytes()
    (folder / TRUNCATED).write_bytes(data[: len(data) // 2])
    (folder / EMPTY).write_bytes(b"")


@pytest.fixture()
def bad_table(toy_table, tmp_path) -> Path:
    """The toy pairs (32) with a truncated and an empty image."""
    table = copy_pairs(toy_table, tmp_path / "bad")
    spoil(table.parent)
    return table


def _events(out_dir: Path, event: str) -> list[dict]:
    return [r for r in read_log(out_dir / "log.jsonl") if r["event"] == event]


def _write_recipe(path: Path, options: dict) -> str:
    path.write_text(yaml.safe_dump(options), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("batches", [{"batch_size": 8}, {"batch_size": 4, "grad_accum": 2}])
def test_unreadable_images_are_left_out_logged_once_and_counted(recipe, bad_table, batches):
    summary = train(load_recipe(None, recipe(datasets=[{"type": "table", "path": str(bad_table)}], **batches)))
    assert summary.step == 8 and len(summary.losses) == 8  # both epochs, every step trained
    assert all(torch.isfinite(torch.tensor(summary.losses)))
    assert set(summary.skipped_items) == {str(bad_table.parent / TRUNCATED), str(bad_table.parent / EMPTY)}
    assert "truncated" in summary.skipped_items[str(bad_table.parent / TRUNCATED)]
    assert summary.to_dict()["n_skipped_items"] == 2
    skipped = _events(summary.out_dir, "skipped_item")
    assert sorted(r["item"] for r in skipped) == sorted(summary.skipped_items)  # once each, over two epochs
    assert all(r["problem"] for r in skipped)


def test_a_step_without_a_readable_pair_updates_nothing_but_counts(recipe, toy_table, tmp_path):
    table = copy_pairs(toy_table, tmp_path / "tiny", n=4)
    (table.parent / "img" / "001.png").write_bytes(b"")
    summary = train(load_recipe(None, recipe(datasets=[{"type": "table", "path": str(table)}], batch_size=1,
                                             epochs=1, max_bad_items=None)))
    assert summary.step == 4 and len(summary.losses) == 3
    assert [r["step"] for r in _events(summary.out_dir, "empty_step")] == [
        r["step"] for r in _events(summary.out_dir, "skipped_item")
    ]
    assert len(summary.skipped_items) == 1


def test_past_max_bad_items_the_run_checkpoints_and_stops_with_one_line(recipe, toy_table, tmp_path, capsys):
    table = copy_pairs(toy_table, tmp_path / "pairs")
    good = {"datasets": [{"type": "table", "path": str(table)}], "epochs": 1}
    assert main(["--recipe", _write_recipe(tmp_path / "r.yaml", recipe(**good))]) == 0
    root = Path(recipe()["out_dir"]) / "checkpoints"
    before = latest_checkpoint(root)
    assert before.name == "step-00000004"
    capsys.readouterr()

    spoil(table.parent)
    limited = recipe(**{**good, "epochs": 2, "resume": True, "max_bad_items": 1})
    assert main(["--recipe", _write_recipe(tmp_path / "r.yaml", limited)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err
    assert "max_bad_items (1)" in errors[0] and "2 unreadable training items" in errors[0]
    assert "img/0" in errors[0] and "resume the run" in errors[0]
    for folder in (before, latest_checkpoint(root)):  # the one from before and the last step, both complete
        load_model(folder, device="cpu")
        assert load_state(folder)[1]["step"] >= 4
    stopped = _events(Path(limited["out_dir"]), "stopped")
    assert len(stopped) == 1 and "max_bad_items" in stopped[0]["error"]

    rest = train(load_recipe(None, {**limited, "max_bad_items": 2}))
    assert rest.step == 8 and set(rest.skipped_items) == {str(table.parent / TRUNCATED), str(table.parent / EMPTY)}
    assert len(_events(rest.out_dir, "skipped_item")) == 2  # the stopped step's records went with it


def test_the_limit_counts_from_the_start_when_no_step_was_trained(recipe, bad_table):
    config = load_recipe(None, recipe(datasets=[{"type": "table", "path": str(bad_table)}], max_bad_items=0,
                                      batch_size=32, epochs=1))
    with pytest.raises(TooManyBadItemsError, match="no step was trained"):
        train(config)
    assert latest_checkpoint(Path(config.out_dir) / "checkpoints") is None


@pytest.mark.slow
def test_two_ranks_stay_in_step_with_unequal_and_empty_batches(recipe, toy_table, tmp_path):
    table = copy_pairs(toy_table, tmp_path / "pairs", n=16)
    spoil(table.parent)
    (table.parent / "img" / "005.png").write_bytes(b"")  # 13 readable pairs: the two processes never hold as many
    runs = {"unequal": {"batch_size": 4, "grad_accum": 2, "loss": "siglip"}, "empty": {"batch_size": 1}}
    recipes = [
        _write_recipe(tmp_path / f"{name}.yaml", recipe(
            **options, datasets=[{"type": "table", "path": str(table)}], out_dir=str(tmp_path / name)
        ))
        for name, options in runs.items()
    ]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(Path(__file__).with_name("ddp_worker.py")), *recipes]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for name, options in runs.items():
        steps = 2 * 16 // (2 * options["batch_size"] * options.get("grad_accum", 1))
        records = read_log(tmp_path / name / "log.jsonl")
        assert sorted(r["step"] for r in records if r["event"] in ("step", "empty_step")) == list(
            range(1, steps + 1)
        ), name
        assert len([r for r in records if r["event"] == "skipped_item"]) == 3, name
        assert all(r["loss"] is not None for r in records if r["event"] == "step"), name
    empty = _events(tmp_path / "empty", "empty_step")  # batch 1: a bad item leaves its process without a pair
    assert 4 <= len(empty) <= 6  # 3 bad items in each of 2 epochs, logged the first time only
    assert {r["step"] for r in empty if r["epoch"] == 0} == {
        r["step"] for r in _events(tmp_path / "empty", "skipped_item")
    }


# -- resuming from files that are not training states ----------------------------------------------------------


class _Touch:
    """Unpickling this creates a file: proof that a file was unpickled unsafely."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _not_a_state(path: Path, kind: str, marker: Path) -> None:
    if kind == "pickle":
        path.write_bytes(pickle.dumps(_Touch(marker)))
    elif kind == "torch-object":
        torch.save({"step": _Touch(marker)}, path)
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "mapping":
        torch.save({"step": 3}, path)
    else:
        path.write_text("not a checkpoint\n", encoding="utf-8")


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir, toy_table, tmp_path_factory) -> tuple[Path, dict]:
    """A one-epoch run's output folder and its options."""
    out = tmp_path_factory.mktemp("finished") / "run"
    options = {"model": str(tiny_model_dir), "datasets": [{"type": "table", "path": str(toy_table)}],
               "batch_size": 8, "out_dir": str(out), "progress": False, "device": "cpu", "manifest": False}
    train(load_recipe(None, options))
    return out, options


@pytest.mark.parametrize("kind", ["pickle", "torch-object", "tensor", "mapping", "text"])
def test_resume_from_a_file_that_is_no_training_state_is_one_line(finished_run, tmp_path, kind, capsys):
    source, options = finished_run
    out = tmp_path / "run"
    shutil.copytree(source, out)
    state = latest_checkpoint(out / "checkpoints") / STATE_FILE
    marker = tmp_path / "unpickled"
    _not_a_state(state, kind, marker)
    recipe = _write_recipe(tmp_path / "r.yaml", {**options, "out_dir": str(out), "epochs": 2, "resume": True})
    assert main(["--recipe", recipe]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{state}: not a training state saved by openmedclip (" in err, err
    reason = err.split(str(state))[1]
    assert "weights_only" not in reason and "allow" not in reason
    assert not marker.exists()


def test_train_help_shows_placeholders_not_type_names(capsys):
    assert run(["train", "--help"]) == 0
    shown = capsys.readouterr().out
    assert "--recipe PATH" in shown and "--max_bad_items N" in shown
    assert "<" not in shown
