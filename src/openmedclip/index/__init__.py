"""Embedding index over an image archive: FAISS vectors plus a SQLite metadata store, incremental and crash-safe.

``build_index(archive, model, out)`` encodes the archive's image files (again only what changed, later), and
``open_index(out)`` searches them by vector, text or image, optionally filtered by metadata. Names are imported on
first use, so importing the package stays light (no torch, no faiss).
"""

from __future__ import annotations

from openmedclip.lazy import lazy_exports

_EXPORTS = {
    "build_index": "openmedclip.index.build",
    "BuildReport": "openmedclip.index.report",
    "open_index": "openmedclip.index.archive",
    "ArchiveIndex": "openmedclip.index.archive",
    "SearchHit": "openmedclip.index.archive",
    "FILTER_KEYS": "openmedclip.index.records",
    "KINDS": "openmedclip.index.vectors",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
