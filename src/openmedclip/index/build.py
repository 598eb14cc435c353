"""``build_index``: encode an archive's new and changed files into the index, forget removed ones, and derive
the FAISS file.

One process: files are encoded ``commit_every`` at a time, and each such chunk is committed to the store in one
transaction, so a build killed at any moment keeps every committed chunk and the next build goes on from there.
Under torchrun (``WORLD_SIZE`` > 1) every process plans the same work, encodes its share of the sorted list of
files into its own part (:mod:`openmedclip.index.parts`), and the first process merges the parts and writes the
FAISS file; every process returns the same report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from openmedclip.errors import InvalidInputError
from openmedclip.index import derived, vectors
from openmedclip.index.identity import ModelIdentity
from openmedclip.index.lock import build_lock
from openmedclip.index.parts import merge_parts, open_part
from openmedclip.index.plan import Plan, make_plan
from openmedclip.index.records import Failure, FileRecord, FileState
from openmedclip.index.report import BuildReport
from openmedclip.index.scan import check_archive, chunks, describe, discover, in_threads, sha256_file
from openmedclip.index.store import Store, store_path
from openmedclip.progress import progress_bar
from openmedclip.train.distributed import Context, gather_objects, init_distributed, shutdown

if TYPE_CHECKING:
    from openmedclip.models.loaded import LoadedModel

T = TypeVar("T")


@dataclass
class _Encoded:
    """What one process encoded."""

    added: int = 0
    changed: int = 0
    encoded: int = 0
    failures: list[Failure] = field(default_factory=list)


def build_index(
    archive: str | Path,
    model: LoadedModel | str,
    out: str | Path,
    *,
    kind: str = "auto",
    batch_size: int = 32,
    device: str | None = None,
    precision: str | None = None,
    rebuild: bool = False,
    commit_every: int = 256,
    progress: bool = False,
) -> BuildReport:
    """Index the image files under ``archive`` with ``model`` into the folder ``out`` (created if needed).

    ``model`` is a loaded model or anything ``load_model`` takes (then loaded on ``device`` in ``precision``,
    default 'auto'). A later build on the same ``out`` encodes only new and changed files and forgets removed
    ones; it must use the model the index records, unless ``rebuild`` re-encodes every file with the new one.
    ``kind`` picks the FAISS index ('auto', 'flat', 'ivf', 'hnsw'; see :mod:`openmedclip.index.vectors`).
    Files that cannot be read are reported in ``errors`` and tried again once they change.
    """
    started = time.perf_counter()
    vectors.check_kind(kind)
    if batch_size < 1 or commit_every < 1:
        raise InvalidInputError(f"batch_size and commit_every must be at least 1, got {batch_size}, {commit_every}")
    if not isinstance(model, str) and (device is not None or precision is not None):
        raise InvalidInputError("device and precision apply when the model is given by name; this one is loaded")
    root = check_archive(Path(archive))
    folder = Path(out)
    ctx = init_distributed(device)
    try:
        loaded = _load(model, ctx, device, precision)
        report = _build(root, loaded, folder, ctx, kind=kind, batch_size=batch_size, rebuild=rebuild,
                        commit_every=commit_every, progress=progress)
    finally:
        shutdown(ctx)
    return replace(report, seconds=time.perf_counter() - started)


def _load(model: LoadedModel | str, ctx: Context, device: str | None, precision: str | None) -> LoadedModel:
    if not isinstance(model, str):
        return model
    from openmedclip.models import load_model

    return load_model(model, device=ctx.device if ctx.distributed else device, precision=precision or "auto")


def _build(archive: Path, loaded: LoadedModel, folder: Path, ctx: Context, *, kind: str, batch_size: int,
           rebuild: bool, commit_every: int, progress: bool) -> BuildReport:
    identity = ModelIdentity.of(loaded)
    dim = _feature_dim(loaded)
    with ExitStack() as held:

        def prepare() -> Store:
            held.enter_context(build_lock(folder))
            store = held.enter_context(closing(Store.create(store_path(folder))))
            _prepare(store, folder, archive, identity, dim, kind, rebuild)
            return store

        main = _on_main(ctx, prepare)
        reader = main if main is not None else held.enter_context(closing(Store.open(folder)))
        plan = make_plan(discover(archive), reader.indexed(), reader.failed(), _hashes(archive))
        share = plan.encode[ctx.rank :: ctx.world_size]
        if ctx.distributed:
            with closing(open_part(folder, ctx.rank)) as part:
                mine = _encode(loaded, archive, share, plan, part, batch_size, commit_every, progress and ctx.is_main)
        else:
            mine = _encode(loaded, archive, share, plan, reader, batch_size, commit_every, progress)
        done = gather_objects(ctx, mine)

        def finish() -> BuildReport:
            assert main is not None
            return _finish(main, folder, archive, identity, kind, plan, done)

        report = _on_main(ctx, finish, share=True)
    assert report is not None
    return report


def _on_main(ctx: Context, step: Callable[[], T], *, share: bool = False) -> T | None:
    """Run ``step`` on the first process only; its error is raised on every process, and with ``share`` its
    result is returned by every process (else None on the others)."""
    result: T | None = None
    problem: str | None = None
    try:
        if ctx.is_main:
            result = step()
    except Exception as error:
        problem = str(error)
        raise
    finally:
        if ctx.distributed:
            outcome = gather_objects(ctx, (result if share else None, problem))[0]
    if ctx.distributed and not ctx.is_main:
        result, problem = outcome
        if problem is not None:
            raise InvalidInputError(f"the first process failed: {problem}")
    return result


def _feature_dim(loaded: LoadedModel) -> int:
    """The size of the model's features (one short text encoded)."""
    from openmedclip.embed import encode_texts

    return int(encode_texts(loaded, ["x"]).shape[1])


def _prepare(store: Store, folder: Path, archive: Path, identity: ModelIdentity, dim: int, kind: str,
             rebuild: bool) -> None:
    """Fold in parts left by an interrupted run, then record (or check) the model and the build's settings."""
    merge_parts(store, folder)
    recorded = store.model()
    if recorded is None or rebuild:
        store.reset(identity, dim)
    else:
        recorded.check_build(identity, folder)
    with store.transaction():
        store.set_meta({"archive": archive, "kind": kind})


def _hashes(archive: Path) -> Callable[[Sequence[FileState]], list[str | None]]:
    """Hashes files of ``archive`` on a few threads (None for a file that cannot be read)."""

    def hash_files(states: Sequence[FileState]) -> list[str | None]:
        def one(state: FileState) -> str | None:
            try:
                return sha256_file(archive / state.path)
            except OSError:
                return None

        return in_threads(one, states)

    return hash_files


def _describe(archive: Path, state: FileState) -> FileRecord | Failure:
    try:
        return describe(archive, state)
    except OSError as error:
        return Failure(state.path, state.size, state.mtime_ns, None, f"cannot read the file: {error.strerror}")


def _encode(loaded: LoadedModel, archive: Path, files: Sequence[FileState], plan: Plan, store: Store,
            batch_size: int, commit_every: int, progress: bool) -> _Encoded:
    """Encode ``files`` a chunk at a time, committing each chunk to ``store``."""
    from openmedclip.embed import encode_images

    done = _Encoded()
    with progress_bar("Indexing", total=len(files), enabled=progress) as advance:
        for chunk in chunks(files, commit_every):
            described = in_threads(lambda state: _describe(archive, state), chunk)
            records = [item for item in described if isinstance(item, FileRecord)]
            failures = [item for item in described if isinstance(item, Failure)]
            result = encode_images(loaded, [archive / record.path for record in records], batch_size=batch_size)
            features = result.features.numpy()
            encoded = [(records[index], features[row]) for row, index in enumerate(result.indices)]
            failures += [Failure(records[error.index].path, records[error.index].size,
                                 records[error.index].mtime_ns, records[error.index].sha256, error.message)
                         for error in result.errors]
            store.commit_chunk(encoded, failures)
            done.encoded += len(records)
            done.changed += sum(record.path in plan.changed for record, _ in encoded)
            done.added += sum(record.path not in plan.changed for record, _ in encoded)
            done.failures += failures
            advance(len(chunk))
    return done


def _finish(store: Store, folder: Path, archive: Path, identity: ModelIdentity, kind: str, plan: Plan,
            done: Sequence[_Encoded]) -> BuildReport:
    """Merge the parts, apply the plan's state updates and removals, write the FAISS file; the report."""
    merge_parts(store, folder)
    if plan.writes:
        store.update_states(plan.touched, plan.removed, plan.failure_touched, plan.failures_gone)
    with store.snapshot():
        tag = store.version_tag()
        faiss_index = vectors.read(folder, tag)
        fresh = faiss_index is None or vectors.kind_of(faiss_index) != vectors.resolve_kind(kind, store.count())
        if faiss_index is None or fresh:
            faiss_index = derived.from_store(store, kind)
    if fresh:
        vectors.write(faiss_index, folder, tag)
    still = [Failure(path, known.size, known.mtime_ns, known.sha256, known.message or "could not be indexed")
             for path, known in plan.still_failing.items()]
    failures = sorted([f for part in done for f in part.failures] + still, key=lambda f: f.path)
    return BuildReport(
        archive=str(archive),
        index=str(folder),
        model=identity.reference,
        kind=vectors.kind_of(faiss_index),
        added=sum(part.added for part in done),
        changed=sum(part.changed for part in done),
        removed=len(plan.removed),
        unchanged=plan.unchanged,
        failed=len(failures),
        encoded=sum(part.encoded for part in done),
        count=int(faiss_index.ntotal),
        errors=failures,
    )
