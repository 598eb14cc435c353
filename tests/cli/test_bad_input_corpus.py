"""``openmedclip zeroshot`` on the bad-input corpus (tests/bad_input_corpus.py): each case alone and mixed into a
folder of good images, held to the policy that module encodes (``violations``, ``mixed_violations``)."""

from __future__ import annotations

import pickle
import struct
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_support import Result

from bad_input_corpus import (
    CASES,
    MARKER,
    Case,
    Outcome,
    command,
    mixed_command,
    mixed_violations,
    run_fresh,
    violations,
    write_good_images,
)
from openmedclip.io.checks import MAX_PIXELS

Runner = Callable[..., Result]


def _cases(kind: str, fresh: bool = False) -> list[Case]:
    return [case for case in CASES if case.kind == kind and case.fresh_process == fresh]


def _ids(case: Case) -> str:
    return case.name


def _named(name: str) -> Case:
    return next(case for case in CASES if case.name == name)


def _assert_clean(problems: list[str], result: Outcome) -> None:
    """No policy violations; otherwise show them with the exit code and stderr."""
    assert not problems, "\n".join([*problems, f"exit code {result.code}; stderr:", result.err])


@pytest.fixture()
def zeroshot(cli, capsys) -> Runner:
    """``cli(*args)`` as a real process would show it: warnings that reach Python's default printer (under the
    interpreter's default filters) and an escaping exception's traceback are added to stderr."""

    def invoke(*args: object) -> Result:
        with warnings.catch_warnings(record=True) as caught:
            for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
                warnings.simplefilter("ignore", category)
            try:
                result = cli(*args)
            except Exception:
                out, err = capsys.readouterr()
                result = Result(1, out, err + traceback.format_exc())
        shown = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)
        return Result(result.code, result.out, result.err + shown)

    return invoke


def test_corpus_names_and_kinds():
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    assert {case.kind for case in CASES} == {"bad_item", "usage", "good"}
    assert all(case.message for case in CASES if case.kind != "good")


def test_corpus_files_are_small(tmp_path):
    """Every case but the big ones builds in well under a megabyte (the bomb included)."""
    for case in CASES:
        if not case.big:
            folder = tmp_path / case.name
            folder.mkdir()
            case.build(folder)
            size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())
            assert size < 2**20, (case.name, size)


def test_bomb_declares_more_than_the_guard(tmp_path):
    (path,) = _named("bomb_png_30000").build(tmp_path)
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    assert (width, height) == (30_000, 30_000)
    assert width * height > MAX_PIXELS


def test_malicious_pickle_would_create_the_marker(tmp_path):
    """The payload is real: unpickling the checkpoint creates the marker (so its absence elsewhere means something)."""
    _named("model_malicious_pickle").build(tmp_path)
    pickle.loads((tmp_path / "evil-model" / "evil.pt").read_bytes())
    assert (tmp_path / MARKER).exists()


@pytest.mark.parametrize("case", _cases("bad_item"), ids=_ids)
def test_bad_item_alone(zeroshot, tmp_path, case):
    paths = case.build(tmp_path)
    result = zeroshot(*command(case, tmp_path, paths))
    _assert_clean(violations(case, tmp_path, paths, result), result)


@pytest.mark.parametrize("case", _cases("bad_item"), ids=_ids)
def test_bad_item_mixed_with_good_images(zeroshot, tmp_path, case):
    good = write_good_images(tmp_path)
    paths = case.build(tmp_path)
    result = zeroshot(*mixed_command(case, tmp_path, paths))
    _assert_clean(mixed_violations(case, tmp_path, paths, good, result), result)


@pytest.mark.parametrize("case", _cases("good"), ids=_ids)
def test_good_case(zeroshot, tmp_path, case):
    paths = case.build(tmp_path)
    result = zeroshot(*command(case, tmp_path, paths))
    _assert_clean(violations(case, tmp_path, paths, result), result)


def test_non_utf8_name_in_the_table(zeroshot, tmp_path):
    """A file name that is not valid UTF-8 is classified and printed in the table without crashing."""
    paths = _named("non_utf8_name").build(tmp_path)
    result = zeroshot("zeroshot", *paths, "--labels", "normal,pneumonia")
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    assert "pneumonia" in result.out


@pytest.mark.parametrize("case", _cases("usage"), ids=_ids)
def test_usage_case(zeroshot, tmp_path, case):
    paths = case.build(tmp_path)
    result = zeroshot(*command(case, tmp_path, paths))
    _assert_clean(violations(case, tmp_path, paths, result), result)


@pytest.mark.parametrize("case", [case for case in CASES if case.isolated], ids=_ids)
def test_isolated_case_in_a_fresh_process(tmp_path, case):
    """Cases that could hang run in their own process, with a timeout."""
    paths = case.build(tmp_path)
    run = run_fresh(command(case, tmp_path, paths))
    _assert_clean(violations(case, tmp_path, paths, run, run.peak_rss_mb), run)


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory) -> dict[str, tuple[Path, list[Path]]]:
    """The near-limit images, built once: case name -> (folder, command-line paths)."""
    built = {}
    for case in CASES:
        if case.big:
            folder = tmp_path_factory.mktemp(case.name)
            built[case.name] = (folder, case.build(folder))
    return built


@pytest.mark.slow
@pytest.mark.parametrize("case", [case for case in CASES if case.big], ids=_ids)
def test_big_case_in_a_fresh_process(big_corpus, case):
    """A near-limit image is classified with a peak RSS under the limit."""
    folder, paths = big_corpus[case.name]
    run = run_fresh(command(case, folder, paths))
    _assert_clean(violations(case, folder, paths, run, run.peak_rss_mb), run)
