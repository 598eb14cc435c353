"""Few-shot linear probes: no leaks, exact k-shot subsets, determinism, agreement with a direct scikit-learn fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from openmedclip.errors import InvalidInputError
from openmedclip.tasks.probe import linear_probe


def _blobs(counts: list[int], spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised float64 features around one random direction per class; every row is distinct."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(123).normal(size=(len(counts), 16))
    y = np.repeat(np.arange(len(counts)), counts)
    x = centres[y] + spread * rng.normal(size=(len(y), 16))
    return x / np.linalg.norm(x, axis=1, keepdims=True), y


@pytest.fixture()
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = _blobs([20, 14, 3], spread=1.0, seed=0)
    x_test, y_test = _blobs([10, 10, 10], spread=1.0, seed=1)
    return x, y, x_test, y_test


class _Spy:
    """Records, in order, which rows every LogisticRegression.fit / predict_proba call received."""

    def __init__(self, monkeypatch, x: np.ndarray, x_test: np.ndarray):
        self.ids = {row.tobytes(): ("train", i) for i, row in enumerate(x)}
        self.ids.update({row.tobytes(): ("test", i) for i, row in enumerate(x_test)})
        self.events: list[tuple[str, set]] = []
        fit, predict = LogisticRegression.fit, LogisticRegression.predict_proba

        def spy_fit(probe, rows, *args, **kwargs):
            self.events.append(("fit", self._rows(rows)))
            return fit(probe, rows, *args, **kwargs)

        def spy_predict(probe, rows):
            self.events.append(("predict", self._rows(rows)))
            return predict(probe, rows)

        monkeypatch.setattr(LogisticRegression, "fit", spy_fit)
        monkeypatch.setattr(LogisticRegression, "predict_proba", spy_predict)

    def _rows(self, rows: np.ndarray) -> set:
        found = [self.ids[row.tobytes()] for row in np.asarray(rows, dtype=np.float64)]
        assert len(set(found)) == len(found)
        return set(found)


@pytest.mark.parametrize("k", [1, 2, 4, 16, None])
@pytest.mark.parametrize("seed", [0, 3])
def test_only_k_shot_rows_are_fitted_or_validated_and_test_rows_only_scored(monkeypatch, data, k, seed):
    x, y, x_test, y_test = data
    spy = _Spy(monkeypatch, x, x_test)
    grid = (0.1, 1.0, 10.0)
    (run,) = linear_probe(x, y, x_test, y_test, k_shots=(k,), seeds=(seed,), c_grid=grid, n_bootstrap=0).runs
    subset = {("train", int(i)) for i in run.indices}
    test_rows = {("test", i) for i in range(len(x_test))}

    *selection, final_fit, final_predict = spy.events
    assert final_fit == ("fit", subset)
    assert final_predict == ("predict", test_rows)
    assert len(selection) == (2 * len(grid) if run.n_val else 0)
    for (kind_fit, fitted), (kind_val, validated) in zip(selection[::2], selection[1::2]):
        assert (kind_fit, kind_val) == ("fit", "predict")
        assert fitted | validated == subset
        assert not fitted & validated
        assert len(validated) == run.n_val


def test_k_shot_subsets_hold_k_rows_per_class_nested_and_all_means_all(data):
    x, y, x_test, y_test = data
    result = linear_probe(x, y, x_test, y_test, k_shots=(1, 2, 4, 8, None), seeds=(0, 1), c_grid=(1.0,), n_bootstrap=0)
    for run in result.runs:
        expected = [20, 14, 3] if run.k is None else [min(run.k, n) for n in (20, 14, 3)]
        assert run.class_counts == expected
        assert np.bincount(y[run.indices], minlength=3).tolist() == expected
    for seed in (0, 1):
        subsets = [set(run.indices) for run in result.runs if run.seed == seed]
        assert all(small <= large for small, large in zip(subsets, subsets[1:]))
        assert subsets[-1] == set(range(len(y)))
    assert set(result.runs_for(4)[0].indices) != set(result.runs_for(4)[1].indices)
    assert result.notes == [
        "k=4: ['2'] have fewer than 4 training rows; all of their rows are used",
        "k=8: ['2'] have fewer than 8 training rows; all of their rows are used",
    ]


def test_one_shot_uses_default_c_and_more_shots_validate(data):
    x, y, x_test, y_test = data
    result = linear_probe(
        x, y, x_test, y_test, k_shots=(1, 2, 8), seeds=(0,), c_grid=(1.0,), default_c=0.5, n_bootstrap=0
    )
    one, two, eight = result.runs
    assert (one.c, one.c_selected_by, one.n_val) == (0.5, "default", 0)
    assert (two.c_selected_by, two.n_val) == ("validation", 3)
    assert eight.n_val == 2 + 2 + 1  # round(0.2 * 8) for the full classes, 1 of the class with 3 rows


def test_validation_rejects_a_c_that_cannot_classify(data):
    x, y, x_test, y_test = data
    result = linear_probe(x, y, x_test, y_test, k_shots=(8, None), c_grid=(1e-9, 10.0), n_bootstrap=0)
    assert all(run.c == 10.0 for run in result.runs)


def test_same_seed_same_result_and_seeds_differ(data):
    x, y, x_test, y_test = data
    options = {"k_shots": (2, 4), "seeds": (0, 1), "c_grid": (0.1, 1.0, 10.0), "n_bootstrap": 50}
    first = linear_probe(x, y, x_test, y_test, **options)
    again = linear_probe(x, y, x_test, y_test, **options)
    assert first.to_dict() == again.to_dict()
    for a, b in zip(first.runs, again.runs):
        np.testing.assert_array_equal(a.probabilities, b.probabilities)
        np.testing.assert_array_equal(a.indices, b.indices)


def test_separable_classes_are_classified_perfectly():
    x, y = _blobs([12, 12, 12, 12], spread=0.05, seed=0)
    x_test, y_test = _blobs([30, 30, 30, 30], spread=0.05, seed=1)
    result = linear_probe(x, y, x_test, y_test, k_shots=(1, 4, None), seeds=(0, 1), c_grid=(1.0, 100.0), n_bootstrap=0)
    assert all(run.metrics.accuracy.value == 1.0 for run in result.runs)
    assert result.curve() == {1: (1.0, 0.0), 4: (1.0, 0.0), None: (1.0, 0.0)}


@pytest.mark.parametrize("k", [4, None])
def test_refit_matches_a_direct_sklearn_fit_on_the_same_rows(data, k):
    x, y, x_test, y_test = data
    (run,) = linear_probe(x, y, x_test, y_test, k_shots=(k,), seeds=(0,), c_grid=(0.5, 5.0), n_bootstrap=0).runs
    direct = LogisticRegression(C=run.c, max_iter=1000).fit(x[run.indices], y[run.indices])
    np.testing.assert_array_equal(run.probabilities.argmax(1), direct.predict(x_test))
    np.testing.assert_allclose(run.probabilities, direct.predict_proba(x_test), atol=1e-6)
    assert run.metrics.accuracy.value == pytest.approx(np.mean(direct.predict(x_test) == y_test))


def test_summary_curve_and_json(data):
    x, y, x_test, y_test = data
    result = linear_probe(
        torch.from_numpy(x).float(),
        torch.from_numpy(y),
        x_test,
        y_test,
        class_names=["normal", "benign", "malignant"],
        k_shots=(2, None),
        seeds=(0, 1, 2),
        c_grid=(1.0, 10.0),
        n_bootstrap=20,
    )
    accuracies = [run.metrics.accuracy.value for run in result.runs_for(2)]
    assert result.curve()[2] == pytest.approx((np.mean(accuracies), np.std(accuracies, ddof=1)))
    assert result.curve("macro_f1")[None][0] == result.summary(None)["macro_f1"][0]
    report = json.loads(json.dumps(result.to_dict()))
    assert list(report["shots"]) == ["2", "all"]
    assert len(report["shots"]["2"]["runs"]) == 3
    assert report["shots"]["all"]["runs"][0]["metrics"]["class_names"] == ["normal", "benign", "malignant"]
    assert report["shots"]["2"]["mean"]["accuracy"] == pytest.approx(np.mean(accuracies))
    single = linear_probe(x, y, x_test, y_test, k_shots=(2,), seeds=(0,), c_grid=(1.0,), n_bootstrap=0)
    assert single.to_dict()["shots"]["2"]["sd"]["accuracy"] is None
    with pytest.raises(InvalidInputError, match="metric"):
        result.curve("precision")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: {**a, "test_features": a["test_features"][:, :5]}, "dimensions"),
        (lambda a: {**a, "train_targets": a["train_targets"][:-1]}, "train_targets"),
        (lambda a: {**a, "train_targets": a["train_targets"].astype(float)}, "integer"),
        (lambda a: {**a, "train_targets": np.minimum(a["train_targets"], 1)}, r"\['2'\]"),
        (lambda a: {**a, "test_targets": a["test_targets"] + 1, "class_names": "abc"}, "class indices"),
        (lambda a: {**a, "train_features": np.full_like(a["train_features"], np.nan)}, "NaN"),
        (lambda a: {**a, "train_features": a["train_features"][0]}, "shape"),
        (lambda a: {**a, "k_shots": (0,)}, "k_shots"),
        (lambda a: {**a, "k_shots": (2, 2)}, "unique"),
        (lambda a: {**a, "seeds": ()}, "seeds"),
        (lambda a: {**a, "c_grid": (0.0,)}, "c_grid"),
        (lambda a: {**a, "val_fraction": 1.0}, "val_fraction"),
    ],
)
def test_bad_inputs_name_the_problem(data, change, message):
    x, y, x_test, y_test = data
    args = {"train_features": x, "train_targets": y, "test_features": x_test, "test_targets": y_test}
    args = change(args)
    with pytest.raises(InvalidInputError, match=message):
        linear_probe(
            args.pop("train_features"),
            args.pop("train_targets"),
            args.pop("test_features"),
            args.pop("test_targets"),
            **args,
            n_bootstrap=0,
        )
