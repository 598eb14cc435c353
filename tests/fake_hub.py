"""A Hugging Face hub on the loopback interface, for download tests: just the endpoints ``huggingface_hub`` uses.

- ``GET /api/{models|datasets}/ORG/NAME[/revision/REV]``: repository info (``sha``, ``siblings``);
- ``GET /api/{models|datasets}/ORG/NAME/tree/REV``: the file listing;
- ``HEAD|GET [/datasets]/ORG/NAME/resolve/REV/FILE``: a file, with the ``X-Repo-Commit``, ``ETag`` and
  ``Content-Length`` headers a download needs.

Unknown repositories, revisions and files answer 404 with the hub's ``X-Error-Code``. Every request is logged as
``"METHOD /path"`` (query string dropped) in :attr:`FakeHub.requests`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

REPO = r"(?P<repo>[^/]+/[^/]+)"
API = re.compile(rf"^/api/(?P<kind>models|datasets)/{REPO}(?:/(?P<what>revision|tree)/(?P<rev>[^/]+)(?P<sub>/.*)?)?$")
RESOLVE = re.compile(rf"^(?P<kind>/datasets)?/{REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


@dataclass
class FakeRepo:
    """One hub repository: commits (hash -> files) and the revisions (branch or tag) pointing at them."""

    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    revisions: dict[str, str] = field(default_factory=dict)

    def commit(self, revision: str) -> str | None:
        return revision if revision in self.commits else self.revisions.get(revision)


class FakeHub:
    """A threaded loopback HTTP server laid out like the hub; use as a context manager."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], FakeRepo] = {}
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add_repo(
        self, repo_id: str, files: dict[str, bytes] | Path, *, repo_type: str = "model", revision: str = "main"
    ) -> str:
        """Publish ``files`` (name -> content, or every file of a folder) at ``revision``; return its commit hash."""
        if isinstance(files, Path):
            files = {path.relative_to(files).as_posix(): path.read_bytes()
                     for path in sorted(files.rglob("*")) if path.is_file()}
        repo = self.repos.setdefault((repo_type, repo_id), FakeRepo())
        digest = hashlib.sha1(json.dumps([repo_id, revision, sorted(files)]).encode())
        for name in sorted(files):
            digest.update(files[name])
        commit = digest.hexdigest()
        repo.commits[commit] = dict(files)
        repo.revisions[revision] = commit
        return commit

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(body=True)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def _answer(self, *, body: bool) -> None:
            path = urlsplit(self.path).path
            hub.requests.append(f"{self.command} {path}")
            api, resolve = API.match(path), RESOLVE.match(path)
            if api is not None and body:
                kind = "dataset" if api["kind"] == "datasets" else "model"
                self._api(kind, api["repo"], api["what"], unquote(api["rev"] or "main"))
            elif resolve is not None:
                kind = "dataset" if resolve["kind"] else "model"
                self._file(kind, resolve["repo"], unquote(resolve["rev"]), unquote(resolve["file"]), body=body)
            else:
                self._send(404, b"", {"X-Error-Code": "RepoNotFound"}, body=body)

        def _api(self, kind: str, repo_id: str, what: str | None, revision: str) -> None:
            found = self._find(kind, repo_id, revision, body=True)
            if found is None:
                return
            commit, files = found
            if what == "tree":
                listing = [{"type": "file", "path": name, "size": len(data), "oid": _sha1(data)}
                           for name, data in sorted(files.items())]
                self._json(listing)
            else:
                self._json({"id": repo_id, "sha": commit, "private": False,
                            "siblings": [{"rfilename": name} for name in sorted(files)]})

        def _file(self, kind: str, repo_id: str, revision: str, name: str, *, body: bool) -> None:
            found = self._find(kind, repo_id, revision, body=body)
            if found is None:
                return
            commit, files = found
            if name not in files:
                self._send(404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, body=body)
                return
            data = files[name]
            etag = f'"{hashlib.sha256(data).hexdigest()}"'
            self._send(200, data, {"X-Repo-Commit": commit, "ETag": etag,
                                   "Content-Type": "application/octet-stream"}, body=body)

        def _find(self, kind: str, repo_id: str, revision: str, *, body: bool) -> tuple[str, dict] | None:
            repo = hub.repos.get((kind, repo_id))
            if repo is None:
                self._send(404, b"", {"X-Error-Code": "RepoNotFound"}, body=body)
                return None
            commit = repo.commit(revision)
            if commit is None:
                self._send(404, b"", {"X-Error-Code": "RevisionNotFound"}, body=body)
                return None
            return commit, repo.commits[commit]

        def _json(self, content: object) -> None:
            self._send(200, json.dumps(content).encode(), {"Content-Type": "application/json"}, body=True)

        def _send(self, status: int, data: bytes, headers: dict[str, str], *, body: bool) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

    return Handler


def _sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


MODEL_FILES = ("open_clip_config.json", "open_clip_model.safetensors")
TEXT_FILES = ("config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


def publish_tiny_biomedclip(
    hub: FakeHub, source: Path, repo_id: str, *, revision: str = "main", repo_type: str = "model"
) -> str:
    """Publish the tiny BiomedCLIP folder ``source`` laid out as on the hub; return the model repo's commit.

    The model repository holds its config and weights, plus a README and a pickle copy of the weights that a
    download limited to the entry's files must skip. The BiomedBERT repository (``tiny_models.BIOMEDBERT``) holds
    the text config and tokenizer files, plus weights that a download of what a model needs must skip.
    """
    from tiny_models import BIOMEDBERT

    model = {name: (source / name).read_bytes() for name in MODEL_FILES}
    model["README.md"] = b"# tiny\n"
    model["open_clip_pytorch_model.bin"] = b"not needed" * 100
    text = {name: (source / name).read_bytes() for name in TEXT_FILES}
    text["pytorch_model.bin"] = text["model.safetensors"] = b"big weights" * 100
    hub.add_repo(BIOMEDBERT, text)
    return hub.add_repo(repo_id, model, repo_type=repo_type, revision=revision)
