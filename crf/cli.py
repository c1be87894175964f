"""Command-line edges: parse options, call the library, turn its exceptions into clear messages."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import click

from .loader import StudyDefinitionError, load_study
from .model import Study
from .summary import study_summary

DEFAULT_STUDY = Path(__file__).resolve().parent.parent / "schemas" / "belimumab-nmosd"

study_option = click.option(
    "--study", "study_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_STUDY,
    show_default="schemas/belimumab-nmosd", help="Study definition folder.",
)


def _load(study_dir: Path) -> Study:
    try:
        return load_study(study_dir)
    except StudyDefinitionError as exc:
        for problem in exc.problems:
            click.echo(f"problem: {problem}", err=True)
        raise click.ClickException(f"{len(exc.problems)} problem(s) in the study definition {study_dir}; nothing was built")


@click.group(invoke_without_command=True)
@study_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output folder: builds every form (PDF and Excel).")
@click.pass_context
def build(ctx: click.Context, study_dir: Path, out: Optional[Path]) -> None:
    """Build case report forms from a study definition.

    Example: python build_crf.py check
    """
    ctx.ensure_object(dict)
    ctx.obj["study_dir"] = study_dir
    if ctx.invoked_subcommand is None:
        if out is None:
            click.echo(ctx.get_help())
            ctx.exit(2)
        click.echo("PDF and Excel renderers are not built yet; run `check`.", err=True)
        ctx.exit(2)


@build.command()
@study_option
def check(study_dir: Path) -> None:
    """Load and check the study definition; print a summary and every problem.

    Exit status 1 when there are problems. Example: python build_crf.py check --study schemas/belimumab-nmosd
    """
    try:
        study = load_study(study_dir)
    except StudyDefinitionError as exc:
        for problem in exc.problems:
            click.echo(f"problem: {problem}")
        click.echo(f"\n{len(exc.problems)} problem(s) in {study_dir}")
        sys.exit(1)
    click.echo(study_summary(study))
    click.echo("\nNo problems found.")
