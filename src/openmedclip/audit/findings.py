"""What an audit finds: pairs of copies (exact or near, within or across parts) and the report that sums them up."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CopyPair:
    """Two items that are copies of each other: exact (same decoded pixels) or near (perceptual hash distance at most
    the threshold, or embedding cosine at least its threshold)."""

    first_part: str
    first_key: str
    second_part: str
    second_key: str
    kind: str
    """'exact', 'near' (perceptual hash) or 'embedding' (similar by embedding only)."""
    distance: int
    """Perceptual hash bits that differ (0..64)."""
    cosine: float | None
    first_labels: tuple[str, ...]
    second_labels: tuple[str, ...]

    @property
    def cross_part(self) -> bool:
        return self.first_part != self.second_part

    @property
    def conflicting(self) -> bool:
        """Whether the copies carry different labels (both labelled)."""
        return bool(self.first_labels) and bool(self.second_labels) and self.first_labels != self.second_labels

    def to_dict(self) -> dict[str, Any]:
        return {
            "first": {"part": self.first_part, "key": self.first_key, "labels": list(self.first_labels)},
            "second": {"part": self.second_part, "key": self.second_key, "labels": list(self.second_labels)},
            "kind": self.kind,
            "phash_distance": self.distance,
            "cosine": None if self.cosine is None else round(self.cosine, 5),
            "conflicting_labels": self.conflicting,
        }


@dataclass
class AuditReport:
    """Every copy pair found among some parts, with the thresholds used and per-part counts."""

    parts: dict[str, int]
    """Part name -> readable items."""
    training_parts: list[str]
    pairs: list[CopyPair]
    near_distance: int
    near_correlation: float
    embedding_cosine: float | None
    model: str | None = None
    unreadable: list[tuple[str, str, str]] = field(default_factory=list)

    def pairs_between(self, first: str, second: str, kinds: tuple[str, ...] = ("exact", "near")) -> list[CopyPair]:
        """Pairs of ``kinds`` with one item in each of two parts (the same part twice: pairs within it)."""
        wanted = {first, second}
        return [
            pair for pair in self.pairs
            if pair.kind in kinds and {pair.first_part, pair.second_part} == wanted
            and (first != second or not pair.cross_part)
        ]

    def items_with_copy(self, part: str, others: list[str], kinds: tuple[str, ...] = ("exact", "near")) -> set[str]:
        """Keys of ``part``'s items that have a copy of ``kinds`` in any of ``others``."""
        keys = set()
        for pair in self.pairs:
            if pair.kind not in kinds:
                continue
            if pair.first_part == part and pair.second_part in others and pair.second_part != part:
                keys.add(pair.first_key)
            if pair.second_part == part and pair.first_part in others and pair.first_part != part:
                keys.add(pair.second_key)
        return keys

    def part_table(self) -> list[dict[str, Any]]:
        """Per part: items, items in exact / near copies within the part, items with an exact / near copy in one of
        the (other) training parts, and conflicting-label pairs the part is in."""
        rows = []
        for part, count in self.parts.items():
            others = [p for p in self.training_parts if p != part]
            within = self.pairs_between(part, part)
            rows.append({
                "part": part,
                "items": count,
                "exact_within": len(_keys_in(within, part, ("exact",))),
                "near_within": len(_keys_in(within, part, ("exact", "near"))),
                "against": others,
                "exact_across": len(self.items_with_copy(part, others, ("exact",))),
                "near_across": len(self.items_with_copy(part, others)),
                "embedding_across": len(self.items_with_copy(part, others, ("embedding",))),
                "conflicting_pairs": sum(1 for pair in self.pairs if pair.conflicting and pair.kind != "embedding"
                                         and part in (pair.first_part, pair.second_part)),
            })
        return rows

    def to_dict(self) -> dict[str, Any]:
        kinds = Counter(pair.kind for pair in self.pairs)
        return {
            "parts": self.parts,
            "training_parts": self.training_parts,
            "thresholds": {"phash_distance_at_most": self.near_distance,
                           "thumbnail_correlation_at_least": self.near_correlation,
                           "embedding_cosine_at_least": self.embedding_cosine, "model": self.model},
            "counts": {"exact_pairs": kinds["exact"], "near_pairs": kinds["near"],
                       "embedding_pairs": kinds["embedding"],
                       "conflicting_pairs": sum(1 for p in self.pairs if p.conflicting and p.kind != "embedding")},
            "per_part": self.part_table(),
            "pairs": [pair.to_dict() for pair in self.pairs],
            "unreadable": [{"part": part, "key": key, "problem": problem} for part, key, problem in self.unreadable],
        }

    def summary_markdown(self) -> str:
        """A Markdown summary: thresholds, the per-part table and the conflicting-label pairs."""
        similar = (f" Similar by embedding: cosine at least {self.embedding_cosine} with {self.model}."
                   if self.embedding_cosine is not None else "")
        lines = [
            "# Split audit",
            "",
            f"Exact copy: same decoded pixels. Near copy: perceptual hashes (64-bit pHash) at most {self.near_distance}"
            f" bits apart and grey 32 x 32 thumbnails correlated at least {self.near_correlation}." + similar,
            "Evaluation parts are compared with the training parts, training parts with the other training parts.",
            "",
            "| part | items | in exact copies within | in near copies within | compared with | with an exact copy there"
            " | with a near copy there | conflicting-label pairs |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in self.part_table():
            lines.append(
                f"| {row['part']} | {row['items']} | {row['exact_within']} | {row['near_within']} | "
                f"{', '.join(row['against']) or '-'} | {row['exact_across']} | {row['near_across']} | "
                f"{row['conflicting_pairs']} |"
            )
        conflicts = [pair for pair in self.pairs if pair.conflicting and pair.kind != "embedding"]
        if conflicts:
            lines += ["", "Copies with different labels:", ""]
            for pair in conflicts[:20]:
                lines.append(f"- {pair.kind} (distance {pair.distance}): {pair.first_part} {pair.first_key} "
                             f"{list(pair.first_labels)} / {pair.second_part} {pair.second_key} "
                             f"{list(pair.second_labels)}")
            if len(conflicts) > 20:
                lines.append(f"- ... {len(conflicts) - 20} more")
        if self.unreadable:
            lines += ["", f"{len(self.unreadable)} item(s) could not be read and were left out."]
        return "\n".join(lines) + "\n"


def _keys_in(pairs: list[CopyPair], part: str, kinds: tuple[str, ...]) -> set[str]:
    keys = set()
    for pair in pairs:
        if pair.kind in kinds:
            if pair.first_part == part:
                keys.add(pair.first_key)
            if pair.second_part == part:
                keys.add(pair.second_key)
    return keys
