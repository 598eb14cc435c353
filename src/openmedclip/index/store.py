"""The index's source of truth: one SQLite database (WAL) holding each file's record, its vector and the failures.

Every change is one transaction that also raises the ``generation`` counter, so a reader can tell whether the FAISS
file derived from the vectors is current. A build commits each encoded chunk of files on its own: killing it loses
at most the chunk in flight.

Tables: ``meta`` (key, value), ``items`` (id, the :data:`~openmedclip.index.records.RECORD_FIELDS`, ``vector``:
float32 little-endian bytes), ``failures`` (path, size, mtime_ns, sha256, message).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from openmedclip.errors import InvalidInputError
from openmedclip.index.identity import ModelIdentity
from openmedclip.index.plan import Known
from openmedclip.index.records import (
    FILTER_KEYS,
    INTEGER_FIELDS,
    RECORD_FIELDS,
    Failure,
    FileRecord,
    FileState,
)

STORE_NAME = "index.sqlite"
FORMAT = "openmedclip-index"
VERSION = 1
VECTOR_DTYPE = np.dtype("<f4")
_PARAMETERS_PER_QUERY = 900
"""Ids per ``IN (...)`` list, well below SQLite's limit on bound parameters."""


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


_COLUMNS = _quoted(RECORD_FIELDS)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    "path" TEXT NOT NULL UNIQUE, "size" INTEGER NOT NULL, "mtime_ns" INTEGER NOT NULL, "sha256" TEXT NOT NULL,
    "format" TEXT, "modality" TEXT, "body_part" TEXT, "study_uid" TEXT, "series_uid" TEXT,
    "rows" INTEGER, "columns" INTEGER,
    vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (
    "path" TEXT PRIMARY KEY, "size" INTEGER NOT NULL, "mtime_ns" INTEGER NOT NULL, "sha256" TEXT,
    message TEXT NOT NULL
);
{"".join(f'CREATE INDEX IF NOT EXISTS items_{key} ON items ("{key}");' for key in FILTER_KEYS)}
"""
_UPSERT = (
    f"INSERT INTO items ({_COLUMNS}, vector) VALUES ({', '.join('?' * (len(RECORD_FIELDS) + 1))}) "
    f"ON CONFLICT(path) DO UPDATE SET "
    + ", ".join(f'"{name}" = excluded."{name}"' for name in (*RECORD_FIELDS[1:], "vector"))
)
_MERGE = (
    f"INSERT INTO items ({_COLUMNS}, vector) SELECT {_COLUMNS}, vector FROM part.items WHERE true "
    f"ON CONFLICT(path) DO UPDATE SET "
    + ", ".join(f'"{name}" = excluded."{name}"' for name in (*RECORD_FIELDS[1:], "vector"))
)


def store_path(folder: Path) -> Path:
    """The database file of the index in ``folder``."""
    return Path(folder) / STORE_NAME


class Store:
    """A connection to an index's (or a build part's) database. Use :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path, connection: sqlite3.Connection):
        self.path = path
        self.connection = connection

    @classmethod
    def create(cls, path: Path, kind: str = FORMAT) -> Store:
        """Open the ``kind`` store at ``path``, first creating it (and its folder) empty when there is none yet.

        The tables and meta are created in one transaction, so a crash leaves either no store or a whole one.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        store = cls(path, _connect(path))
        if not store._has_tables():
            with store.transaction():
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    store.connection.execute(statement)
                store.set_meta({"format": kind, "version": VERSION, "generation": 0, "store_id": uuid.uuid4().hex})
        store.check(kind)
        return store

    def _has_tables(self) -> bool:
        try:
            return self.connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
        except sqlite3.DatabaseError as error:
            self.close()
            raise InvalidInputError(f"{self.path}: not an openmedclip index ({error})") from None

    @classmethod
    def open(cls, folder: Path) -> Store:
        """Open the index in ``folder``; raise ``InvalidInputError`` naming it when it holds none."""
        path = store_path(folder)
        if not path.is_file():
            what = "no such folder" if not Path(folder).exists() else f"not an openmedclip index (no {STORE_NAME})"
            raise InvalidInputError(f"{folder}: {what}")
        store = cls(path, _connect(path))
        store.check(FORMAT)
        return store

    def check(self, kind: str) -> None:
        """Raise ``InvalidInputError`` unless this database is a ``kind`` store of a version this code reads."""
        try:
            meta = self.meta()
        except sqlite3.DatabaseError as error:
            self.close()
            raise InvalidInputError(f"{self.path}: not an openmedclip index ({error})") from None
        if meta.get("format") != kind:
            self.close()
            raise InvalidInputError(f"{self.path}: not an openmedclip index (format {meta.get('format')!r})")
        if meta.get("version") != str(VERSION):
            self.close()
            raise InvalidInputError(f"{self.path}: index format version {meta.get('version')}; this openmedclip "
                                    f"reads version {VERSION} (rebuild the index)")

    def close(self) -> None:
        self.connection.close()

    def transaction(self) -> _Transaction:
        """``with store.transaction():`` one atomic write (BEGIN IMMEDIATE ... COMMIT, rolled back on error)."""
        return _Transaction(self.connection, "BEGIN IMMEDIATE")

    def snapshot(self) -> _Transaction:
        """``with store.snapshot():`` reads that all see the same committed state."""
        return _Transaction(self.connection, "BEGIN")

    # -- meta --------------------------------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return dict(self.connection.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, values: Mapping[str, object]) -> None:
        """Write meta values (inside a transaction)."""
        self.connection.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                    [(key, str(value)) for key, value in values.items()])

    @property
    def generation(self) -> int:
        row = self.connection.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    def version_tag(self) -> str:
        """Names the store's current content: its id (made when it was created) and generation."""
        return f"{self.meta()['store_id']}-{self.generation}"

    def _advance(self) -> None:
        self.connection.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
        )

    def model(self) -> ModelIdentity | None:
        """The model the index was built with (None before the first build)."""
        meta = self.meta()
        if "model" not in meta:
            return None
        return ModelIdentity(meta["model"], meta["model_family"], meta["model_architecture"], meta["model_source"])

    def dim(self) -> int | None:
        value = self.meta().get("dim")
        return int(value) if value else None

    def record_model(self, identity: ModelIdentity, dim: int) -> None:
        """Record the index's model and vector size (inside a transaction)."""
        self.set_meta({"model": identity.reference, "model_family": identity.family,
                       "model_architecture": identity.architecture, "model_source": identity.source, "dim": dim})

    # -- what is stored ----------------------------------------------------------------------------------------

    def count(self) -> int:
        return int(self.connection.execute("SELECT count(*) FROM items").fetchone()[0])

    def indexed(self) -> dict[str, Known]:
        """Every indexed path with its stored state and hash."""
        rows = self.connection.execute('SELECT "path", "size", "mtime_ns", "sha256" FROM items')
        return {path: Known(size, mtime_ns, sha256) for path, size, mtime_ns, sha256 in rows}

    def failed(self) -> dict[str, Known]:
        """Every failed path with its stored state, hash and problem."""
        rows = self.connection.execute('SELECT "path", "size", "mtime_ns", "sha256", message FROM failures')
        return {path: Known(size, mtime_ns, sha256, message) for path, size, mtime_ns, sha256, message in rows}

    def ids(self) -> np.ndarray:
        """Every item id, ascending (int64)."""
        rows = self.connection.execute("SELECT id FROM items ORDER BY id").fetchall()
        return np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))

    def vectors(self, ids: np.ndarray, dim: int) -> np.ndarray:
        """The vectors of ``ids`` (which must exist), in that order: ``[len(ids), dim]`` float32."""
        found: dict[int, bytes] = {}
        for start in range(0, len(ids), _PARAMETERS_PER_QUERY):
            chunk = [int(i) for i in ids[start : start + _PARAMETERS_PER_QUERY]]
            marks = ", ".join("?" * len(chunk))
            found.update(self.connection.execute(f"SELECT id, vector FROM items WHERE id IN ({marks})", chunk))
        return _matrix([found[int(i)] for i in ids], dim)

    def iter_vectors(self, dim: int, chunk: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(ids, vectors)`` chunks over every item in id order (call inside :meth:`snapshot`)."""
        cursor = self.connection.execute("SELECT id, vector FROM items ORDER BY id")
        while rows := cursor.fetchmany(chunk):
            yield np.array([row[0] for row in rows], dtype=np.int64), _matrix([row[1] for row in rows], dim)

    def ids_where(self, where: Mapping[str, str]) -> np.ndarray:
        """The ids (ascending) of the items whose metadata equal every value of ``where``."""
        clauses, values = [], []
        for key, value in where.items():
            clauses.append(f'"{key}" = ?')
            values.append(_filter_value(key, value))
        sql = "SELECT id FROM items" + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY id"
        rows = self.connection.execute(sql, values).fetchall()
        return np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))

    def records(self, ids: Sequence[int]) -> dict[int, FileRecord]:
        """The records of those ``ids`` that exist."""
        found: dict[int, FileRecord] = {}
        for start in range(0, len(ids), _PARAMETERS_PER_QUERY):
            chunk = [int(i) for i in ids[start : start + _PARAMETERS_PER_QUERY]]
            marks = ", ".join("?" * len(chunk))
            for row in self.connection.execute(f"SELECT id, {_COLUMNS} FROM items WHERE id IN ({marks})", chunk):
                found[row[0]] = FileRecord(*row[1:])
        return found

    # -- changes (each in its own transaction) -----------------------------------------------------------------

    def commit_chunk(self, encoded: Sequence[tuple[FileRecord, np.ndarray]], failures: Sequence[Failure]) -> None:
        """Store encoded files with their vectors and failed ones with their problem, atomically."""
        with self.transaction():
            self.connection.executemany(_UPSERT, [
                (*(getattr(record, name) for name in RECORD_FIELDS), _blob(vector)) for record, vector in encoded
            ])
            self.connection.executemany('DELETE FROM failures WHERE "path" = ?',
                                        [(record.path,) for record, _ in encoded])
            self.connection.executemany(
                'INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?)',
                [(f.path, f.size, f.mtime_ns, f.sha256, f.message) for f in failures],
            )
            self.connection.executemany('DELETE FROM items WHERE "path" = ?', [(f.path,) for f in failures])
            self._advance()

    def update_states(
        self, touched: Sequence[FileState], removed: Sequence[str], failure_touched: Sequence[FileState],
        failures_gone: Sequence[str],
    ) -> None:
        """New stat of files whose content did not change; forget removed files; atomically."""
        with self.transaction():
            for table, states in (("items", touched), ("failures", failure_touched)):
                self.connection.executemany(f'UPDATE {table} SET "size" = ?, "mtime_ns" = ? WHERE "path" = ?',
                                            [(s.size, s.mtime_ns, s.path) for s in states])
            self.connection.executemany('DELETE FROM items WHERE "path" = ?', [(path,) for path in removed])
            self.connection.executemany('DELETE FROM failures WHERE "path" = ?', [(path,) for path in failures_gone])
            self._advance()

    def reset(self, identity: ModelIdentity, dim: int) -> None:
        """Forget every file and record a new model, atomically (a rebuild)."""
        with self.transaction():
            self.connection.execute("DELETE FROM items")
            self.connection.execute("DELETE FROM failures")
            self.record_model(identity, dim)
            self._advance()

    def merge(self, part: Path) -> None:
        """Fold a build part (a store of the same schema) into this one, atomically; merging twice is harmless."""
        self.connection.execute("ATTACH DATABASE ? AS part", (str(part),))
        try:
            with self.transaction():
                self.connection.execute(_MERGE)
                self.connection.execute('DELETE FROM failures WHERE "path" IN (SELECT "path" FROM part.items)')
                self.connection.execute('INSERT OR REPLACE INTO failures SELECT * FROM part.failures')
                self.connection.execute('DELETE FROM items WHERE "path" IN (SELECT "path" FROM part.failures)')
                self._advance()
        finally:
            self.connection.execute("DETACH DATABASE part")


class _Transaction:
    def __init__(self, connection: sqlite3.Connection, begin: str):
        self.connection = connection
        self.begin = begin

    def __enter__(self) -> None:
        self.connection.execute(self.begin)

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        self.connection.execute("COMMIT" if kind is None else "ROLLBACK")


def _connect(path: Path) -> sqlite3.Connection:
    """Autocommit connection (transactions are explicit), WAL journal, full sync: a commit survives a crash."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
    except sqlite3.DatabaseError as error:
        connection.close()
        raise InvalidInputError(f"{path}: not an openmedclip index ({error})") from None
    return connection


def _blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=VECTOR_DTYPE).tobytes()


def _matrix(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    if not blobs:
        return np.empty((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype=VECTOR_DTYPE).reshape(len(blobs), dim).astype(np.float32)


def check_where(where: Mapping[str, Any] | None) -> dict[str, str]:
    """``where`` as a dict; raise ``InvalidInputError`` naming the allowed keys for an unknown one."""
    chosen = dict(where or {})
    unknown = sorted(set(chosen) - set(FILTER_KEYS))
    if unknown:
        raise InvalidInputError(f"unknown filter key(s) {', '.join(map(repr, unknown))}; allowed: "
                                f"{', '.join(FILTER_KEYS)}")
    for key, value in chosen.items():
        _filter_value(key, value)
    return chosen


def _filter_value(key: str, value: Any) -> str | int:
    if key in INTEGER_FIELDS:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise InvalidInputError(f"filter {key}={value!r}: expected a whole number") from None
    return str(value)
