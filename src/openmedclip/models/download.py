"""Downloading a registry model's files from the Hugging Face hub: the one place openmedclip goes online.

Everything else reads files offline (``HF_HUB_OFFLINE=1`` is the usual setting). :func:`download_model` turns
``huggingface_hub``'s offline mode off for the duration of the call only (the process-wide
``huggingface_hub.constants.HF_HUB_OFFLINE`` flag, restored afterwards, so the call is not meant to run beside other
threads that rely on offline mode), talks to ``HF_ENDPOINT`` (default ``https://huggingface.co``) with a short
timeout (``HF_HUB_ETAG_TIMEOUT`` seconds, default 10), and says in one line when the hub cannot be reached.

Where the files go (the last two are where :func:`openmedclip.models.locate.registry_folder` looks):

- ``to``: that folder;
- else ``$OPENMEDCLIP_MODELS/<name>/`` when ``OPENMEDCLIP_MODELS`` is set (and ``cache`` is false);
- else the Hugging Face cache (``$HF_HUB_CACHE``, at the entry's revision).

Only the entry's ``files`` patterns are fetched (all files when it names none). The repositories it ``needs`` give
only their config and tokenizer files (:data:`NEEDS_FILES`), into ``<folder>/<repo>/`` for a folder destination,
else into the cache. Published ``checksums`` are verified afterwards; a mismatch deletes the file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import HfApi, constants, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import filter_repo_objects

from openmedclip.errors import InvalidInputError, ModelLoadError
from openmedclip.models.hf_local import hf_cache_dir, hub_url
from openmedclip.models.locate import MODELS_ENV, registry_folder
from openmedclip.models.registry import RegistryEntry, registry

NEEDS_FILES = (
    "config.json", "tokenizer*.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt", "vocab.json",
    "merges.txt", "*.model",
)
"""What is fetched from a repository an entry ``needs``: its text-tower config and tokenizer files, no weights."""

HUB_TIMEOUT_S = 10.0
"""Seconds to wait for the hub to answer (``HF_HUB_ETAG_TIMEOUT`` overrides it)."""

DIGESTS = ("md5", "sha256")
NETWORK_MODULES = frozenset({"httpx", "httpx2", "requests", "urllib3"})
"""Libraries whose exceptions mean the hub could not be reached (whichever HTTP client huggingface_hub uses)."""


class DownloadError(ModelLoadError):
    """A download failed: the hub cannot be reached, a file is missing, or a checksum does not match."""


@dataclass(frozen=True)
class Checksum:
    """A published checksum that matched the downloaded file."""

    file: str
    algorithm: str
    digest: str


@dataclass(frozen=True)
class Downloaded:
    """What :func:`download_entry` did."""

    entry: RegistryEntry
    folder: Path | None
    """Where the entry's files are (None when it is not on the hub and must be fetched by hand)."""
    files: tuple[str, ...] = ()
    """The entry's files fetched there (paths inside the repository)."""
    verified: tuple[Checksum, ...] = ()
    """The published checksums, all matched."""
    needs: dict[str, Path] = field(default_factory=dict)
    """Each needed repository -> the folder holding its config and tokenizer files."""
    in_cache: bool = False
    """The files went to the Hugging Face cache (not a folder of their own)."""
    manual: str | None = None
    """For models not on the hub: where to get their files by hand and where to put them."""


def download_model(
    name: str, *, to: str | Path | None = None, cache: bool = False, force: bool = False, endpoint: str | None = None
) -> Path:
    """Download registry model ``name``'s files and return the folder holding them (see the module docstring).

    ``to``: an explicit folder; ``cache``: into the Hugging Face cache even when ``OPENMEDCLIP_MODELS`` is set;
    ``force``: download again files already there; ``endpoint``: the hub address (default ``HF_ENDPOINT``).
    Bundled models return their installed folder. Raises :class:`DownloadError` (a ``ModelLoadError``) when the
    hub cannot be reached, a checksum does not match, or the model is not on the hub (the message says where to
    get its files by hand).
    """
    done = download_entry(registry_entry(name), to=to, cache=cache, force=force, endpoint=endpoint)
    if done.manual is not None or done.folder is None:
        raise DownloadError(name, " ".join(str(done.manual).split()))
    return done.folder


def registry_entry(name: str) -> RegistryEntry:
    """The registry entry called ``name``; the same 'unknown model' error as ``load_model`` otherwise."""
    entries = registry()
    if name in entries:
        return entries[name]
    from openmedclip.models.load import unknown_name_message

    raise ModelLoadError(name, unknown_name_message(name), unknown_name_message(name, "'openmedclip models --names'"))


def download_entry(
    entry: RegistryEntry,
    *,
    to: str | Path | None = None,
    cache: bool = False,
    force: bool = False,
    endpoint: str | None = None,
) -> Downloaded:
    """Fetch ``entry``'s files (or, off the hub, only the files it needs) and verify its checksums."""
    if entry.bundled:
        return Downloaded(entry, registry_folder(entry))
    target = destination(entry, to=to, cache=cache)
    hub = _Hub((endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/"), entry.name, force)
    with online():
        main = hub.fetch(entry.hf_repo, entry.files, entry.revision, entry.repo_type, target) if entry.hf_repo else None
        needs = {repo: hub.fetch(repo, NEEDS_FILES, None, "model", target / repo if target else None, every=False)[0]
                 for repo in entry.needs}
    if main is None:
        return Downloaded(entry, None, needs=needs, in_cache=target is None, manual=manual_instructions(entry, target))
    folder, files = main
    return Downloaded(entry, folder, files, verify_checksums(entry, folder), needs, in_cache=target is None)


def destination(entry: RegistryEntry, *, to: str | Path | None = None, cache: bool = False) -> Path | None:
    """The folder ``entry``'s files go to; None for the Hugging Face cache."""
    if to is not None and cache:
        raise InvalidInputError("give either a destination folder or the cache, not both")
    if to is not None:
        return Path(to).expanduser()
    root = os.environ.get(MODELS_ENV)
    if root and not cache:
        return Path(root).expanduser() / entry.name
    return None


def manual_instructions(entry: RegistryEntry, target: Path | None) -> str:
    """How to get a model that is not on the hub: where to download which files and where to put them."""
    files = ", ".join([*entry.files, *(name for name in entry.checksums if name not in entry.files)])
    root = os.environ.get(MODELS_ENV)
    if target is not None:
        folder = str(target)
    elif root:
        folder = f"{Path(root).expanduser() / entry.name} (${MODELS_ENV}/{entry.name}/)"
    else:
        folder = f"${MODELS_ENV}/{entry.name}/ (set {MODELS_ENV} to your models folder first)"
    lines = [
        f"{entry.name} is not on the Hugging Face hub; download it by hand:",
        f"  1. get {'these files: ' + files if files else 'its checkpoint files'} from {entry.url}",
        f"  2. put them in {folder}",
    ]
    if entry.checksums:
        lines.append("  3. check them: " + ", ".join(f"{name} {digest}" for name, digest in entry.checksums.items()))
    if entry.needs:
        lines.append(f"  the config and tokenizer files it also needs ({', '.join(map(hub_url, entry.needs))}) come "
                     f"from the hub: `openmedclip download {entry.name}` fetches them")
    return "\n".join(lines)


def verify_checksums(entry: RegistryEntry, folder: Path) -> tuple[Checksum, ...]:
    """Check every published checksum of ``entry`` in ``folder``; a mismatch deletes the file and raises."""
    verified = []
    for name, published in sorted(entry.checksums.items()):
        algorithm, _, expected = published.partition(":")
        if algorithm not in DIGESTS or not expected:
            raise DownloadError(entry.name, f"published checksum of {name} is {published!r}, not 'md5:<hex>' or "
                                "'sha256:<hex>'")
        path = folder / name
        if not path.is_file():
            raise DownloadError(entry.name, f"{name} has a published checksum but is not in {folder} (the registry "
                                f"entry's files do not include it, or {entry.url} no longer has it)")
        actual = file_digest(path, algorithm)
        if actual != expected.lower():
            _remove(path)
            raise DownloadError(
                entry.name,
                f"checksum mismatch for {name}: expected {algorithm}:{expected.lower()}, got {algorithm}:{actual}; "
                f"the file was deleted (a corrupt or changed download: run the download again)",
            )
        verified.append(Checksum(name, algorithm, actual))
    return tuple(verified)


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _remove(path: Path) -> None:
    """Delete a downloaded file; in the hub cache also the blob its snapshot link points to (a re-download would
    otherwise link the same bad blob again)."""
    blob = path.resolve() if path.is_symlink() else None
    path.unlink()
    if blob is not None:
        blob.unlink(missing_ok=True)


@contextmanager
def online() -> Iterator[None]:
    """huggingface_hub may make requests inside the block, even when ``HF_HUB_OFFLINE=1`` is set."""
    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def hub_timeout() -> float:
    """Seconds to wait for an answer from the hub."""
    try:
        return float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or HUB_TIMEOUT_S)
    except ValueError:
        return HUB_TIMEOUT_S


@dataclass(frozen=True)
class _Hub:
    endpoint: str
    model: str
    force: bool

    def fetch(
        self,
        repo: str,
        patterns: Sequence[str],
        revision: str | None,
        repo_type: str,
        local_dir: Path | None,
        *,
        every: bool = True,
    ) -> tuple[Path, tuple[str, ...]]:
        """Download the files of ``repo`` matching ``patterns`` (all when empty) into ``local_dir`` or the cache.

        ``every``: each pattern must match a file of the repository. Returns the folder and the files.
        """
        timeout = hub_timeout()
        allow = list(patterns) or None
        where = self._where(repo, revision, repo_type)
        try:
            info = HfApi(endpoint=self.endpoint).repo_info(
                repo, revision=revision, repo_type=repo_type, timeout=timeout
            )
            listing = [sibling.rfilename for sibling in getattr(info, "siblings", None) or ()]
            unmatched = [name for name in patterns if not any(filter_repo_objects(listing, allow_patterns=name))]
            if every and unmatched:
                raise DownloadError(self.model, f"{where} has no file matching {', '.join(map(repr, unmatched))}")
            folder = snapshot_download(
                repo, revision=revision, repo_type=repo_type, allow_patterns=allow, force_download=self.force,
                local_dir=str(local_dir) if local_dir is not None else None, cache_dir=str(hf_cache_dir()),
                etag_timeout=timeout, endpoint=self.endpoint,
            )
        except DownloadError:
            raise
        except Exception as error:
            problem = self._problem(error, where, timeout, local_dir)
            if problem is None:
                raise
            raise DownloadError(self.model, problem) from None
        return Path(folder), tuple(filter_repo_objects(listing, allow_patterns=allow))

    def _where(self, repo: str, revision: str | None, repo_type: str) -> str:
        kind = "dataset repository" if repo_type == "dataset" else "repository"
        return f"{kind} {repo}" + (f" at revision {revision!r}" if revision else "") + f" on {self.endpoint}"

    def _problem(self, error: Exception, where: str, timeout: float, local_dir: Path | None) -> str | None:
        """One line saying what went wrong; None for errors that are neither the hub's nor the disk's."""
        if isinstance(error, RevisionNotFoundError):
            return f"{where}: no such revision"
        if isinstance(error, GatedRepoError):
            return f"{where} is gated: accept its terms on its page and log in (HF_TOKEN or `hf auth login`)"
        if isinstance(error, RepositoryNotFoundError):
            return f"{where} not found (or private: log in with HF_TOKEN or `hf auth login`)"
        if isinstance(error, HfHubHTTPError):
            status = error.response.status_code if error.response is not None else "an error"
            return f"{where}: the hub answered {status} ({_first_line(error)})"
        if isinstance(error, (LocalEntryNotFoundError, ConnectionError, TimeoutError)) or any(
            kind.__module__.split(".")[0] in NETWORK_MODULES for kind in type(error).__mro__
        ):
            timed_out = "timeout" in type(error).__name__.lower()
            reason = f"no answer within {timeout:g} s" if timed_out else _first_line(error) or type(error).__name__
            return (
                f"cannot reach the Hugging Face hub at {self.endpoint} ({reason}); check the network connection "
                "and proxy settings (HF_ENDPOINT, HTTPS_PROXY), or download the files by hand"
            )
        if isinstance(error, OSError):
            return f"cannot write the files of {where} to {local_dir or hf_cache_dir()}: {error}"
        return None


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else ""
