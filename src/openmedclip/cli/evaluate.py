"""``openmedclip eval`` and ``openmedclip report``: parse options, call :mod:`openmedclip.eval`, print a summary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import InvalidInputError
from ..metrics.defaults import N_BOOTSTRAP
from .options import DeviceOption, PrecisionOption, model_name, require_extra
from .options import names as _names


def _integers(text: str, option: str) -> list[int]:
    parts = _names(text, option)
    bad = [part for part in parts if not part.lstrip("-").isdigit()]
    if bad:
        raise InvalidInputError(f"{option}: expected comma-separated integers, got {bad[0]!r}")
    return [int(part) for part in parts]


def _shots(text: str) -> list[int | None]:
    """``1,2,all`` -> ``[1, 2, None]`` (None: every training row)."""
    parts = _names(text, "--k-shots")
    return [None if part.lower() == "all" else _integers(part, "--k-shots")[0] for part in parts]


def _log(message: str) -> None:
    """A plain line on stderr."""
    from . import render

    render.stderr.print(render.escape(message), highlight=False, soft_wrap=True)


def _report_failure(failure: dict[str, str]) -> None:
    """``failed DATASET[ / TASK (MODEL)]: ERROR`` on stderr (a dataset that failed as a whole names no task)."""
    from . import render

    what = failure["dataset"]
    if failure["task"] != "*":
        what += f" / {failure['task']} ({failure['model']})"
    line = f"[red]failed[/red] {render.escape(what)}: {render.escape(failure['error'])}"
    render.stderr.print(line, highlight=False, soft_wrap=True)


def _report_skipped_items(items: list[dict[str, str]]) -> None:
    """One line per skipped item (``skipped DATASET [(train)] KEY: PROBLEM``), then their number."""
    from . import render

    render.report_skipped(
        (f"{item['dataset']}{' (train)' if item['split'] == 'train' else ''} {item['key']}", item["reason"])
        for item in items
    )
    _log(f"{len(items)} item(s) skipped (image missing or unreadable); the metrics are on the other items")


def eval_command(
    suite: Annotated[str, typer.Option("--suite", "-s", help="Built-in suite (local, unimed21) or a suite YAML.")],
    model: Annotated[
        Optional[list[str]],
        typer.Option(
            "--model", "-m",
            help="Model name or path, repeat for several (default: $OPENMEDCLIP_MODEL, else openmedclip-base).",
        ),
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out", "-o", help="Folder for the result JSONs and the feature cache (default: results/<suite name>)."
        ),
    ] = None,
    data_root: Annotated[
        Optional[Path], typer.Option(help="Folder the suite's paths are relative to (default: $OPENMEDCLIP_DATA).")
    ] = None,
    tasks: Annotated[Optional[str], typer.Option(help="Comma-separated: zeroshot, probe, retrieval.")] = None,
    datasets: Annotated[Optional[str], typer.Option(help="Comma-separated dataset names (default: all).")] = None,
    bootstrap: Annotated[
        int, typer.Option(min=0, help="Bootstrap resamples for the intervals (0: none).")
    ] = N_BOOTSTRAP,
    k_shots: Annotated[str, typer.Option(help="Linear-probe shots per class; 'all': every row.")] = "1,2,4,8,16,all",
    seeds: Annotated[str, typer.Option(help="Seeds of the k-shot subsets.")] = "0,1,2",
    limit: Annotated[Optional[int], typer.Option(min=1, help="At most N items per split (quick runs).")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    device: DeviceOption = None,
    precision: PrecisionOption = "auto",
    cache_dir: Annotated[Optional[Path], typer.Option(help="Feature cache folder (default: OUT/.cache).")] = None,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Reuse and store encoded features.")] = True,
    grouped: Annotated[
        bool,
        typer.Option(
            "--group-bootstrap/--item-bootstrap",
            help="Intervals resample the groups (cases) a suite entry names, or single items everywhere.",
        ),
    ] = True,
    exclude_seen: Annotated[
        bool,
        typer.Option(help="Leave out test items whose pixels are in the model's training manifest."),
    ] = False,
) -> None:
    """Evaluate models on a suite: one JSON per (model, dataset, task) under OUT.

    Exit code 0 when every task ran (or was skipped for missing data), 1 when a task failed or items were skipped
    for a missing or unreadable image, 2 for a usage error."""
    task_names = _names(tasks, "--tasks")
    dataset_names = _names(datasets, "--datasets")
    shots = _shots(k_shots)
    seed_list = _integers(seeds, "--seeds")

    from ..eval.runner import EvalOptions, default_out, resolve_data_root, run_suite
    from ..eval.suite import load_suite

    options = EvalOptions(
        **({"tasks": task_names} if task_names else {}),  # default: every registered task
        datasets=dataset_names,
        n_bootstrap=bootstrap,
        k_shots=shots,
        seeds=seed_list,
        limit=limit,
        batch_size=batch_size,
        device=device,
        precision=precision,
        cache_dir=cache_dir,
        use_cache=cache,
        progress=sys.stderr.isatty(),
        grouped=grouped,
        exclude_seen=exclude_seen,
    )
    chosen = load_suite(suite)
    root = resolve_data_root(data_root)
    folder = out or default_out(chosen)
    summary = run_suite(chosen, model or [model_name(None)], folder, root, options, log=_log)
    if summary.skipped_items:
        _report_skipped_items(summary.skipped_items)
    _log(f"wrote {len(summary.written)} result file(s) to {folder}")
    if summary.skipped:
        _log(f"{len(summary.skipped)} dataset(s)/task(s) skipped (data not found)")
    for failure in summary.failed:
        _report_failure(failure)
    if summary.failed or summary.skipped_items:
        raise typer.Exit(1)


def report_command(
    results: Annotated[Path, typer.Argument(help="Folder written by 'openmedclip eval'.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Where to write (default: RESULTS).")] = None,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Also draw PNG plots.")] = True,
) -> None:
    """Tables (Markdown, CSV) and plots from a results folder."""
    if plots:
        require_extra("matplotlib")

    from ..eval.report import write_report

    files = write_report(results, out, plots=plots, progress=sys.stderr.isatty())
    for path in (files.markdown, files.csv, files.metrics_csv):
        typer.echo(str(path))
    if files.plots:
        typer.echo(f"{len(files.plots)} plot(s) in {(out or results) / 'plots'}")
