"""What a build has to do: compare the archive's files with what the store holds.

A file is *new* when the store has no row for it, *changed* when its size or modification time differ from the
stored ones and its SHA-256 differs too (a file touched but not changed only gets its stored state updated), and
*removed* when the store has it but the archive does not. A file that failed before is retried only when it changed
the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from openmedclip.index.records import FileState


@dataclass(frozen=True)
class Known:
    """What the store recorded about a file: its state then, its hash (None when it could not be read) and, for a
    file that failed, why."""

    size: int
    mtime_ns: int
    sha256: str | None
    message: str | None = None

    def same_state(self, state: FileState) -> bool:
        return (self.size, self.mtime_ns) == (state.size, state.mtime_ns)


@dataclass
class Plan:
    """The work of one build."""

    encode: list[FileState] = field(default_factory=list)
    """New and changed files, in path order."""
    changed: set[str] = field(default_factory=set)
    """The paths in ``encode`` that were indexed before with other content."""
    touched: list[FileState] = field(default_factory=list)
    """Indexed files whose stat changed but whose content did not: only their stored state is updated."""
    removed: list[str] = field(default_factory=list)
    """Indexed paths no longer in the archive."""
    unchanged: int = 0
    """Indexed files left as they are (``touched`` included)."""
    still_failing: dict[str, Known] = field(default_factory=dict)
    """Files that failed before and did not change (not retried): path -> what the store recorded."""
    failure_touched: list[FileState] = field(default_factory=list)
    """Failed files whose stat changed but whose content did not."""
    failures_gone: list[str] = field(default_factory=list)
    """Failed paths no longer in the archive."""

    @property
    def writes(self) -> bool:
        """True when the store changes even if nothing needs encoding."""
        return bool(self.touched or self.removed or self.failure_touched or self.failures_gone)


def make_plan(
    files: Sequence[FileState],
    indexed: Mapping[str, Known],
    failed: Mapping[str, Known],
    hash_files: Callable[[Sequence[FileState]], list[str | None]],
) -> Plan:
    """Compare ``files`` (the archive now) with the ``indexed`` and ``failed`` files the store knows.

    ``hash_files`` gives the SHA-256 of each file (None when it cannot be read); it is called once, for the known
    files whose size or modification time changed.
    """
    plan = Plan()
    moved = []
    for state in files:
        known = _known(state, indexed, failed)
        if known is not None and not known.same_state(state):
            moved.append(state)
    hashes = dict(zip((state.path for state in moved), hash_files(moved), strict=True))
    for state in files:
        known = _known(state, indexed, failed)
        if known is None:
            plan.encode.append(state)
            continue
        same = known.same_state(state) or (hashes[state.path] is not None and hashes[state.path] == known.sha256)
        if state.path in indexed:
            if same:
                plan.unchanged += 1
                if not known.same_state(state):
                    plan.touched.append(state)
            else:
                plan.encode.append(state)
                plan.changed.add(state.path)
        elif same:
            plan.still_failing[state.path] = known
            if not known.same_state(state):
                plan.failure_touched.append(state)
        else:
            plan.encode.append(state)
    present = {state.path for state in files}
    plan.removed = sorted(path for path in indexed if path not in present)
    plan.failures_gone = sorted(path for path in failed if path not in present)
    return plan


def _known(state: FileState, indexed: Mapping[str, Known], failed: Mapping[str, Known]) -> Known | None:
    return indexed.get(state.path) or failed.get(state.path)
