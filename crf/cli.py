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
        study = _load(study_dir)
        _build_pdf(study, out, page_size="A4", pdfa=False)
        _build_xlsx(study, out, site=None, subjects=())


def _build_pdf(study: Study, out: Path, page_size: str, pdfa: bool) -> None:
    from .pdf import build_pdfs

    written = build_pdfs(study, out / "pdf", page_size=page_size, pdfa=pdfa)
    click.echo(f"{len(written)} PDF file(s) in {out / 'pdf'}")


def _build_xlsx(study: Study, out: Path, site: Optional[str], subjects: tuple[str, ...]) -> None:
    from .xlsx import build_workbooks

    written = build_workbooks(study, out / "xlsx", site=site, subjects=subjects)
    click.echo(f"{len(written)} workbook(s) in {out / 'xlsx'}")


def parse_subjects(text: Optional[str]) -> tuple[str, ...]:
    """'01-001,01-002' or a range '01-001..01-014' (both ends included) into subject numbers."""
    if not text:
        return ()
    subjects: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if ".." in part:
            first, last = (s.strip() for s in part.split("..", 1))
            prefix_a, _, num_a = first.rpartition("-")
            prefix_b, _, num_b = last.rpartition("-")
            if prefix_a != prefix_b or not num_a.isdigit() or not num_b.isdigit() or int(num_b) < int(num_a):
                raise click.BadParameter(f"range {part!r} must look like 01-001..01-014 (same site, ascending)")
            subjects += [f"{prefix_a}-{n:0{len(num_a)}d}" if prefix_a else f"{n:0{len(num_a)}d}" for n in range(int(num_a), int(num_b) + 1)]
        else:
            subjects.append(part)
    if len(set(subjects)) != len(subjects):
        raise click.BadParameter("a subject is listed twice")
    return tuple(subjects)


out_option = click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out"), show_default=True, help="Output folder.")


@build.command()
@study_option
@out_option
@click.option("--page-size", type=click.Choice(["A4", "Letter"]), default="A4", show_default=True)
@click.option("--pdfa", is_flag=True, help="Write the CRF book as PDF/A-2b for archiving.")
def pdf(study_dir: Path, out: Path, page_size: str, pdfa: bool) -> None:
    """Build the printable PDF forms: one per visit, the blank CRF book and the annotated CRF.

    Example: python build_crf.py pdf --out out
    """
    _build_pdf(_load(study_dir), out, page_size, pdfa)


@build.command()
@study_option
@out_option
@click.option("--site", help="Site number, e.g. 01.")
@click.option("--subjects", help="Subject numbers: 01-001,01-002 or a range 01-001..01-014.")
def xlsx(study_dir: Path, out: Path, site: Optional[str], subjects: Optional[str]) -> None:
    """Build Excel workbooks for sites: one per subject, or one blank template.

    Example: python build_crf.py xlsx --out out --site 01 --subjects 01-001..01-014
    """
    _build_xlsx(_load(study_dir), out, site, parse_subjects(subjects))


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
