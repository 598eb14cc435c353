"""``openmedclip download NAME``: fetch a registry model's files from the Hugging Face hub (the one online command)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..errors import InvalidInputError, ModelLoadError

if TYPE_CHECKING:
    from ..models.download import Downloaded


def download_command(
    name: Annotated[str, typer.Argument(help="A registry name (see 'openmedclip models').")],
    to: Annotated[
        Optional[Path],
        typer.Option("--to", help="Folder for the files (default: $OPENMEDCLIP_MODELS/NAME/, else the HF cache)."),
    ] = None,
    cache: Annotated[
        bool, typer.Option("--cache", help="Into the Hugging Face cache, even when OPENMEDCLIP_MODELS is set.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Download again the files already there.")] = False,
) -> None:
    """Download a registry model's files (goes online even when HF_HUB_OFFLINE=1), verifying published checksums.

    Models that are not on the hub: says where to get their files and where to put them (exit code 1).
    """
    if to is not None and cache:
        raise InvalidInputError("--to and --cache exclude each other (--to DIR: that folder; --cache: the HF cache)")

    from ..models.download import destination, download_entry, manual_instructions, registry_entry
    from ..models.hf_local import hf_cache_dir

    entry = registry_entry(name)
    if entry.bundled:
        done = download_entry(entry)
        typer.echo(f"{name} ships with openmedclip (installed in {done.folder}); nothing to download")
        return
    target = destination(entry, to=to, cache=cache)
    if not entry.hf_repo:
        typer.echo(manual_instructions(entry, target))
        if entry.needs:
            _report(download_entry(entry, to=to, cache=cache, force=force))
        raise typer.Exit(1)
    kind = "dataset repository" if entry.repo_type == "dataset" else "repository"
    revision = f" at revision {entry.revision}" if entry.revision else ""
    into = target if target is not None else f"the Hugging Face cache {hf_cache_dir()}"
    typer.echo(f"{name}: {kind} {entry.hf_repo}{revision} -> {into}")
    _report(download_entry(entry, to=to, cache=cache, force=force))


def _report(done: Downloaded) -> None:
    from ..models.locate import MODELS_ENV, registry_folder

    for repo, folder in done.needs.items():
        typer.echo(f"config and tokenizer files of {repo} in {folder}")
    if done.folder is None:
        return
    typer.echo(f"{len(done.files)} file(s) in {done.folder}")
    if done.verified:
        for check in done.verified:
            typer.echo(f"checksum {check.algorithm} ok: {check.file}")
    else:
        typer.echo("checksums: none published (files not verified)")
    try:
        found = registry_folder(done.entry)
    except ModelLoadError:
        found = None
    name = done.entry.name
    if found is not None and found.resolve() == done.folder.resolve():
        typer.echo(f"openmedclip finds it as '{name}' (e.g. --model {name})")
        return
    if found is not None:
        typer.echo(f"note: '{name}' is read from {found} first")
    depth = len(name.split("/"))
    if done.folder.parts[-depth:] == tuple(name.split("/")):
        typer.echo(f"load it as '{name}' with {MODELS_ENV}={done.folder.parents[depth - 1]}")
    else:
        typer.echo(f"load it as '{name}' from ${MODELS_ENV}/{name}/ (move it there) or as --model {done.folder}")
