"""Finding copies among fingerprints: exact (equal pixel hashes), near (perceptual hashes within a distance) and,
with embeddings, similar by embedding; all pairs within and across parts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from openmedclip.audit.findings import AuditReport, CopyPair
from openmedclip.audit.fingerprint import Fingerprints, fingerprint
from openmedclip.audit.parts import Part
from openmedclip.errors import InvalidInputError
from openmedclip.models.loaded import LoadedModel

NEAR_DISTANCE = 8
"""Near-copy candidates: perceptual hashes at most this many of 64 bits apart."""

NEAR_CORRELATION = 0.98
"""A candidate is a near copy when the correlation of the two grey 32 x 32 thumbnails is at least this. Checked on
known pairs (the audit tests; docs/evaluation.md): resized, upscaled, JPEG re-encoded (quality 70) and 5 % brightened
copies of real MedMNIST and MedPix images land at 0..4 bits and a correlation of at least 0.993, while distinct
images of homogeneous 28 px sets (PneumoniaMNIST, RetinaMNIST) come within 8 bits about once in 1,500 pairs,
mostly at correlations of 0.83..0.95. Crops that shift the content are not near copies by this rule."""

EMBEDDING_COSINE = 0.99
"""Similar by embedding: cosine at least this, when a model is given (``--model``); how selective it is depends on
the model, so each such pair is listed as its own kind."""

_CHUNK = 512
_POPCOUNT = np.array([bin(value).count("1") for value in range(256)], dtype=np.uint8)


def _packed(bits: np.ndarray) -> np.ndarray:
    return np.packbits(bits, axis=1)


def _distances(packed: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``[stop - start, N]`` Hamming distances of rows ``start:stop`` to every row."""
    return _POPCOUNT[packed[start:stop, None, :] ^ packed[None, :, :]].sum(axis=-1, dtype=np.int32)


def _exact_groups(fingerprints: Fingerprints) -> list[list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for index, digest in enumerate(fingerprints.exact):
        groups[digest].append(index)
    return [members for members in groups.values() if len(members) > 1]


def find_pairs(
    fingerprints: Fingerprints,
    near_distance: int = NEAR_DISTANCE,
    embedding_cosine: float | None = None,
    near_correlation: float = NEAR_CORRELATION,
) -> list[CopyPair]:
    """Every pair of items that are exact copies, near copies (perceptual hashes within ``near_distance`` bits and
    thumbnails correlated at least ``near_correlation``) or (with embeddings and ``embedding_cosine``) similar by
    embedding, each pair once; closest first within each kind."""
    if not 0 <= near_distance <= 64:
        raise InvalidInputError(f"the near-copy distance must be 0..64 bits, got {near_distance}")
    if embedding_cosine is not None and not -1.0 <= embedding_cosine <= 1.0:
        raise InvalidInputError(f"the embedding cosine threshold must be in -1..1, got {embedding_cosine}")
    found: dict[tuple[int, int], str] = {}
    for members in _exact_groups(fingerprints):
        for position, first in enumerate(members):
            for second in members[position + 1:]:
                found[(first, second)] = "exact"
    packed = _packed(fingerprints.perceptual)
    thumbnails = fingerprints.thumbnails
    features = fingerprints.features
    distance_of: dict[tuple[int, int], int] = {}
    for start in range(0, len(fingerprints), _CHUNK):
        stop = min(start + _CHUNK, len(fingerprints))
        distances = _distances(packed, start, stop)
        near = distances <= near_distance
        for row, column in zip(*np.nonzero(near)):
            first, second = start + int(row), int(column)
            if first < second and float(thumbnails[first] @ thumbnails[second]) < near_correlation:
                near[row, column] = False
        similar = (features[start:stop] @ features.T >= embedding_cosine
                   if features is not None and embedding_cosine is not None else np.zeros_like(near))
        for row, column in zip(*np.nonzero(near | similar)):
            first = start + int(row)
            if first < column:
                key = (first, int(column))
                distance_of[key] = int(distances[row, column])
                found.setdefault(key, "near" if near[row, column] else "embedding")
    for key in found:
        if key not in distance_of:
            distance_of[key] = int(_distances(packed, key[0], key[0] + 1)[0, key[1]])
    pairs = [_pair(fingerprints, first, second, kind, distance_of[(first, second)])
             for (first, second), kind in found.items()]
    order = {"exact": 0, "near": 1, "embedding": 2}
    return sorted(pairs, key=lambda p: (order[p.kind], p.distance, -(p.cosine or 0.0), p.first_key, p.second_key))


def _pair(fingerprints: Fingerprints, first: int, second: int, kind: str, distance: int) -> CopyPair:
    features = fingerprints.features
    cosine = float(features[first] @ features[second]) if features is not None else None
    return CopyPair(fingerprints.parts[first], fingerprints.keys[first], fingerprints.parts[second],
                    fingerprints.keys[second], kind, distance, cosine, fingerprints.labels[first],
                    fingerprints.labels[second])


def audit_parts(
    parts: Sequence[Part],
    model: LoadedModel | None = None,
    *,
    near_distance: int = NEAR_DISTANCE,
    near_correlation: float = NEAR_CORRELATION,
    embedding_cosine: float | None = EMBEDDING_COSINE,
    progress: bool = False,
) -> AuditReport:
    """Fingerprint every item of ``parts`` and report the copies among them (``embedding_cosine`` applies only
    with a ``model``)."""
    if not parts:
        raise InvalidInputError("nothing to audit: no data sources given")
    names = [part.name for part in parts]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"part names must be unique, got {names}")
    fingerprints = fingerprint(parts, model, progress=progress)
    threshold = embedding_cosine if model is not None else None
    pairs = find_pairs(fingerprints, near_distance, threshold, near_correlation)
    counts = {part.name: sum(1 for name in fingerprints.parts if name == part.name) for part in parts}
    return AuditReport(
        parts=counts,
        training_parts=[part.name for part in parts if part.is_training],
        pairs=pairs,
        near_distance=near_distance,
        near_correlation=near_correlation,
        embedding_cosine=threshold,
        model=model.spec.name if model is not None else None,
        unreadable=fingerprints.unreadable,
    )
