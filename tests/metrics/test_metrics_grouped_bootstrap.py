"""Cluster bootstrap over groups of items (cases, patients): against a slow explicit cluster bootstrap, against the
item-level bootstrap of de-duplicated data, exact agreement with one item per group, and bad group keys."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from openmedclip.errors import InvalidInputError
from openmedclip.metrics import bootstrap, multiclass_metrics, multilabel_metrics
from openmedclip.metrics.bootstrap import bootstrap_ci, item_groups
from openmedclip.tasks.retrieval import retrieval_metrics

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning"),
    pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true"),
]

MULTICLASS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "ece")


def _uneven_groups(n_items: int, seed: int = 0) -> np.ndarray:
    """Case ids of 1 to 6 items each, interleaved (members of a case are not adjacent)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, size=n_items)
    ids = np.repeat(np.arange(len(sizes)), sizes)[:n_items]
    return np.array([f"case-{i}" for i in rng.permutation(ids)])


def _slow_cluster_bootstrap(metric, arrays, keys, n: int, seed: int, ci: float) -> tuple[float, float, int]:
    """An explicit cluster bootstrap: draw group numbers (first-appearance order) with replacement, gather all their
    items, compute the metric; percentile interval of the defined values."""
    numbers = {key: i for i, key in enumerate(dict.fromkeys(keys.tolist()))}
    members = [[i for i, key in enumerate(keys) if numbers[key] == g] for g in range(len(numbers))]
    draws = np.random.default_rng(seed).integers(0, len(members), size=(n, len(members)))
    values = []
    for draw in draws:
        idx = np.array([i for g in draw for i in members[g]])
        try:
            value = float(metric(*(a[idx] for a in arrays)))
        except ValueError:
            continue
        if math.isfinite(value):
            values.append(value)
    tail = 100 * (1 - ci) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high), n - len(values)


def _duplicated(arrays, k: int):
    """Each item repeated k times in a row, and the group of each copy (its original item)."""
    n = len(arrays[0])
    return [np.repeat(a, k, axis=0) for a in arrays], np.repeat(np.arange(n), k)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_multiclass_groups_match_a_slow_cluster_bootstrap(make_multiclass, n_classes):
    y, p = make_multiclass(150, n_classes, seed=3)
    keys = _uneven_groups(len(y))
    labels = np.arange(n_classes)
    n, seed, ci = 150, 7, 0.9
    r = multiclass_metrics(y, p, n_bootstrap=n, seed=seed, ci=ci, groups=keys)

    def auroc(yy, pp):
        if n_classes == 2:
            return skm.roc_auc_score(yy, pp[:, 1])
        return skm.roc_auc_score(yy, pp, multi_class="ovr", labels=labels)

    reference = {
        "accuracy": lambda yy, pp: skm.accuracy_score(yy, pp.argmax(axis=1)),
        "balanced_accuracy": lambda yy, pp: skm.balanced_accuracy_score(yy, pp.argmax(axis=1)),
        "macro_f1": lambda yy, pp: skm.f1_score(yy, pp.argmax(axis=1), average="macro"),
        "auroc": auroc,
    }
    for name, metric in reference.items():
        low, high, dropped = _slow_cluster_bootstrap(metric, (y, p), keys, n, seed, ci)
        est = getattr(r, name)
        np.testing.assert_allclose([est.low, est.high], [low, high], rtol=1e-12, err_msg=name)
        assert est.n_dropped == dropped, name
    assert r.n_groups == len(set(keys)) and r.to_dict()["bootstrap"]["n_groups"] == r.n_groups
    item_level = multiclass_metrics(y, p, n_bootstrap=n, seed=seed, ci=ci)
    assert item_level.n_groups is None and (item_level.accuracy.low, item_level.accuracy.high) != (
        r.accuracy.low,
        r.accuracy.high,
    )


def test_bootstrap_ci_groups_match_a_slow_cluster_bootstrap():
    rng = np.random.default_rng(2)
    y = (rng.random(90) < 0.3).astype(int)
    s = rng.normal(size=90) + y
    keys = _uneven_groups(90, seed=5)
    got = bootstrap_ci(skm.roc_auc_score, (y, s), n=120, seed=4, ci=0.9, groups=keys)
    low, high, dropped = _slow_cluster_bootstrap(skm.roc_auc_score, (y, s), keys, 120, 4, 0.9)
    np.testing.assert_allclose(got[:2], (low, high), rtol=1e-12)
    assert got[2] == 120 - dropped


def test_multilabel_groups_match_a_slow_cluster_bootstrap():
    rng = np.random.default_rng(4)
    y = (rng.random((120, 3)) < [0.2, 0.4, 0.5]).astype(float)
    s = y + rng.normal(size=y.shape)
    keys = _uneven_groups(120, seed=1)
    r = multilabel_metrics(y, s, thresholds=0.5, n_bootstrap=100, seed=2, ci=0.9, groups=keys)

    def mean_auroc(yy, ss):
        return np.mean([skm.roc_auc_score(yy[:, j], ss[:, j]) for j in range(yy.shape[1])])

    low, high, dropped = _slow_cluster_bootstrap(mean_auroc, (y, s), keys, 100, 2, 0.9)
    np.testing.assert_allclose([r.mean_auroc.low, r.mean_auroc.high], [low, high], rtol=1e-12)
    assert r.mean_auroc.n_dropped == dropped
    for j, label in enumerate(r.labels):
        def auprc(yy, ss, j=j):
            return skm.average_precision_score(yy[:, j], ss[:, j]) if 0 < yy[:, j].sum() < len(yy) else math.nan

        low, high, _ = _slow_cluster_bootstrap(auprc, (y, s), keys, 100, 2, 0.9)
        np.testing.assert_allclose([label.auprc.low, label.auprc.high], [low, high], rtol=1e-12)


def _retrieval_data(n_images: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n_images, 12))
    owner = np.r_[np.arange(n_images), rng.integers(0, n_images, n_images // 2)]
    texts = images[owner] + 1.2 * rng.normal(size=(len(owner), 12))
    return images, texts, owner


def test_retrieval_groups_resample_a_groups_images_with_their_captions():
    images, texts, owner = _retrieval_data(60)
    keys = _uneven_groups(60, seed=3)
    n, seed, ci = 200, 9, 0.9
    r = retrieval_metrics(images, texts, owner, (1, 5), n_bootstrap=n, seed=seed, ci=ci, groups=keys)
    i2t, t2i = r.image_to_text.ranks, r.text_to_image.ranks
    image_index = np.arange(60)

    def recall(k: int, direction: str):
        def metric(drawn_images):
            if direction == "image_to_text":
                return np.mean(i2t[drawn_images] <= k)
            captions = np.concatenate([np.flatnonzero(owner == i) for i in drawn_images])
            return np.mean(t2i[captions] <= k)

        return metric

    for direction in ("image_to_text", "text_to_image"):
        for k in (1, 5):
            low, high, _ = _slow_cluster_bootstrap(recall(k, direction), (image_index,), keys, n, seed, ci)
            est = getattr(r, direction).recall[k]
            np.testing.assert_allclose([est.low, est.high], [low, high], rtol=1e-12, err_msg=f"{direction}@{k}")
    assert r.to_dict()["bootstrap"]["n_groups"] == len(set(keys))


@pytest.mark.parametrize("n_classes", [2, 3])
def test_duplicated_items_in_groups_give_the_deduplicated_interval(make_multiclass, n_classes):
    k = 4
    y, p = make_multiclass(400, n_classes, seed=n_classes)
    deduplicated = multiclass_metrics(y, p, n_bootstrap=400, seed=5)
    (y_dup, p_dup), groups = _duplicated((y, p), k)
    grouped = multiclass_metrics(y_dup, p_dup, n_bootstrap=400, seed=5, groups=groups)
    naive = multiclass_metrics(y_dup, p_dup, n_bootstrap=400, seed=5)
    ratios = []
    for name in MULTICLASS:
        want, got, narrow = getattr(deduplicated, name), getattr(grouped, name), getattr(naive, name)
        np.testing.assert_allclose(
            [got.value, got.low, got.high], [want.value, want.low, want.high], rtol=1e-12, err_msg=name
        )
        ratios.append((got.high - got.low) / (narrow.high - narrow.low))
    assert np.mean(ratios) == pytest.approx(math.sqrt(k), rel=0.15)
    assert min(ratios) > 0.7 * math.sqrt(k)


def test_duplicated_multilabel_items_in_groups_give_the_deduplicated_interval():
    k = 3
    rng = np.random.default_rng(6)
    y = (rng.random((300, 2)) < 0.3).astype(float)
    s = y + rng.normal(size=y.shape)
    deduplicated = multilabel_metrics(y, s, thresholds=0.5, n_bootstrap=400, seed=1)
    (y_dup, s_dup), groups = _duplicated((y, s), k)
    grouped = multilabel_metrics(y_dup, s_dup, thresholds=0.5, n_bootstrap=400, seed=1, groups=groups)
    naive = multilabel_metrics(y_dup, s_dup, thresholds=0.5, n_bootstrap=400, seed=1)
    for name in ("mean_auroc", "mean_auprc"):
        want, got, narrow = getattr(deduplicated, name), getattr(grouped, name), getattr(naive, name)
        np.testing.assert_allclose([got.low, got.high], [want.low, want.high], rtol=1e-12, err_msg=name)
        assert (got.high - got.low) / (narrow.high - narrow.low) == pytest.approx(math.sqrt(k), rel=0.25)


def test_one_item_per_group_equals_the_item_level_bootstrap(make_multiclass):
    y, p = make_multiclass(120, 3, seed=8)
    singletons = [f"patient-{i}" for i in reversed(range(120))]

    def without_groups(result: dict) -> dict:
        return {**result, "bootstrap": {k: v for k, v in result["bootstrap"].items() if k != "n_groups"}}

    item = multiclass_metrics(y, p, n_bootstrap=200, seed=2).to_dict()
    grouped = multiclass_metrics(y, p, n_bootstrap=200, seed=2, groups=singletons).to_dict()
    assert grouped["bootstrap"]["n_groups"] == 120 and item["bootstrap"]["n_groups"] is None
    assert without_groups(grouped) == without_groups(item)

    labels = np.eye(3)[y]
    item_ml = multilabel_metrics(labels, p, n_bootstrap=200, seed=2).to_dict()
    grouped_ml = multilabel_metrics(labels, p, n_bootstrap=200, seed=2, groups=singletons).to_dict()
    assert without_groups(grouped_ml) == without_groups(item_ml)

    images, texts, owner = _retrieval_data(50)
    item_r = retrieval_metrics(images, texts, owner, n_bootstrap=200, seed=2).to_dict()
    grouped_r = retrieval_metrics(images, texts, owner, n_bootstrap=200, seed=2, groups=np.arange(50) * 3).to_dict()
    assert without_groups(grouped_r) == without_groups(item_r)

    assert bootstrap_ci(np.mean, (p[:, 0],), n=50, seed=3, groups=singletons) == bootstrap_ci(
        np.mean, (p[:, 0],), n=50, seed=3
    )


def test_grouped_intervals_do_not_depend_on_chunking(make_multiclass, monkeypatch):
    y, p = make_multiclass(200, 3, seed=1)
    keys = _uneven_groups(200)
    whole = multiclass_metrics(y, p, n_bootstrap=60, seed=4, groups=keys).to_dict()
    monkeypatch.setattr(bootstrap, "_CHUNK_ELEMENTS", 500)
    assert multiclass_metrics(y, p, n_bootstrap=60, seed=4, groups=keys).to_dict() == whole


def test_item_groups_number_groups_in_order_of_first_appearance():
    groups = item_groups(["b", "a", "b", 7, "a", 7], 6)
    assert groups is not None and groups.n_groups == 3
    np.testing.assert_array_equal(groups.codes, [0, 1, 0, 2, 1, 2])
    assert [m.tolist() for m in groups.members()] == [[0, 2], [1, 4], [3, 5]]
    assert item_groups(None, 6) is None and item_groups(groups, 6) is groups


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["a", "b"], "expected 3 group keys"),
        (["a", "b", "c", "d"], "expected 3 group keys"),
        ([1.0, float("nan"), 2.0], "missing key"),
        (np.array([1.0, 2.0, np.nan]), "missing key"),
        (["a", None, "b"], "missing key"),
        (np.zeros((3, 2)), "expected 3 group keys"),
        ([["a"], ["b"], ["c"]], "expected 3 group keys"),
        ([{"a"}, {"b"}, {"c"}], "hashable"),
    ],
)
def test_bad_group_keys_are_refused_by_every_metric(keys, message):
    rng = np.random.default_rng(0)
    p = np.full((3, 2), 0.5)
    y = np.array([0, 1, 0])
    images, texts = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    calls = [
        lambda: item_groups(keys, 3),
        lambda: multiclass_metrics(y, p, n_bootstrap=5, groups=keys),
        lambda: multilabel_metrics(np.eye(2)[y], p, n_bootstrap=5, groups=keys),
        lambda: retrieval_metrics(images, texts, [0, 1, 2], n_bootstrap=5, groups=keys),
        lambda: bootstrap_ci(np.mean, (y,), n=5, groups=keys),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match=message):
            call()
