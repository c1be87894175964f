"""Command-line edges: parse options, call the library, turn its exceptions into clear messages."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

import click

from .loader import StudyDefinitionError, load_study
from .model import Study
from .summary import study_summary

if TYPE_CHECKING:  # the store is imported only by the commands that use it
    from sqlalchemy import Connection

T = TypeVar("T")

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
    # `build_crf.py --study S --out O xlsx` means S and O for the command too (they were silently the defaults):
    # given before the command, they become its defaults; given after it, they win.
    given = {}
    if ctx.get_parameter_source("study_dir") is not click.core.ParameterSource.DEFAULT:
        given["study_dir"] = study_dir
    if out is not None:
        given["out"] = out
    if given and ctx.invoked_subcommand is not None:
        command = ctx.command.get_command(ctx, ctx.invoked_subcommand) if isinstance(ctx.command, click.Group) else None
        takes = {p.name: p for p in command.params} if command else {}
        # --out only where it is the command's output folder (import's --out is the study folder it creates)
        defaults = {k: v for k, v in given.items() if k in takes and (k != "out" or takes[k].default == Path("out"))}
        ctx.default_map = {**(ctx.default_map or {}), ctx.invoked_subcommand: defaults}
    if ctx.invoked_subcommand is None:
        if out is None:
            click.echo(ctx.get_help())
            ctx.exit(2)
        study = _load(study_dir)
        _build_pdf(study, out, page_size="A4", pdfa=False)
        _build_xlsx(study, out, site=None, subjects=())


def _build_pdf(study: Study, out: Path, page_size: str, pdfa: bool) -> None:
    from .pdf import PdfBuildError, build_pdfs

    try:
        written = build_pdfs(study, out / "pdf", page_size=page_size, pdfa=pdfa)
    except PdfBuildError as exc:
        raise click.ClickException(f"the PDF forms could not be built: {exc}")
    click.echo(f"{len(written)} PDF file(s) in {out / 'pdf'}")


def _build_xlsx(study: Study, out: Path, site: Optional[str], subjects: tuple[str, ...]) -> None:
    from .xlsx import build_workbooks

    try:
        written = build_workbooks(study, out / "xlsx", site=site, subjects=subjects)
    except ValueError as exc:  # a subject of another site, a bad subject number
        raise click.UsageError(str(exc))
    click.echo(f"{len(written)} workbook(s) in {out / 'xlsx'}")


MAX_SUBJECTS = 2000  # a typo such as 01-001..01-999999 must not fill the disk


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
    if len(subjects) > MAX_SUBJECTS:
        raise click.BadParameter(f"{len(subjects)} subjects is more than {MAX_SUBJECTS} workbooks in one run; check the range")
    if len(set(subjects)) != len(subjects):
        raise click.BadParameter("a subject is listed twice")
    return tuple(subjects)


out_option = click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out"), show_default=True, help="Output folder.")


@build.command()
@study_option
@out_option
@click.option("--page-size", type=click.Choice(["A4", "Letter"]), default="A4", show_default=True)
@click.option("--pdfa", is_flag=True, help="Write the CRF book as PDF/A-2b for archiving.")
@click.option("--fillable", is_flag=True, help="Instead, write fillable PDF CRFs (AcroForm fields) into OUT/fillable: one per subject, "
              "or one blank without --subjects. Sites fill them in a PDF reader; validate.py reads them like workbooks.")
@click.option("--site", help="With --fillable: site number, e.g. 01.")
@click.option("--subjects", help="With --fillable: subject numbers, 01-001,01-002 or a range 01-001..01-014.")
def pdf(study_dir: Path, out: Path, page_size: str, pdfa: bool, fillable: bool, site: Optional[str], subjects: Optional[str]) -> None:
    """Build the printable PDF forms: one per visit, the blank CRF book and the annotated CRF; or fillable PDFs.

    Example: python build_crf.py pdf --out out
    Example: python build_crf.py pdf --fillable --out out --site 01 --subjects 01-001..01-014
    """
    if not fillable:
        if site or subjects:
            raise click.UsageError("--site and --subjects are for --fillable (or the xlsx command)")
        _build_pdf(_load(study_dir), out, page_size, pdfa)
        return
    if pdfa:
        raise click.UsageError("--pdfa is for the printable book; a fillable PDF is for filling in, not archiving")
    from .pdf import PdfBuildError
    from .pdf_fillable import build_fillable

    chosen = parse_subjects(subjects)
    try:
        written = build_fillable(_load(study_dir), out / "fillable", site=site, subjects=chosen, page_size=page_size)
    except ValueError as exc:  # a subject of another site
        raise click.UsageError(str(exc))
    except PdfBuildError as exc:
        raise click.ClickException(f"the fillable PDFs could not be built: {exc}")
    click.echo(f"{len(written)} fillable PDF(s) in {out / 'fillable'}")


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
    from .rules import RuleSet

    try:
        study = load_study(study_dir)
        ruleset = RuleSet.load(study)
    except StudyDefinitionError as exc:
        for problem in exc.problems:
            click.echo(f"problem: {problem}")
        click.echo(f"\n{len(exc.problems)} problem(s) in {study_dir}")
        sys.exit(1)
    click.echo(study_summary(study))
    click.echo(f"{len(ruleset.rules)} edit checks and deviation rules (listed by: python build_crf.py rules-doc)")
    click.echo("\nNo problems found.")


@build.command()
@study_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out"), show_default=True,
              help="Output folder; the subject files go to OUT/returned/.")
@click.option("--subjects", "count", type=click.IntRange(min=1), default=5, show_default=True, help="Number of subjects.")
@click.option("--site", default="01", show_default=True, help="Site number; subjects are numbered SITE-001, SITE-002...")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same files.")
@click.option("--plant", "plants", default="", help="Problems to plant, comma-separated kinds (repeat a kind to plant it twice).")
@click.option("--format", "fmt", type=click.Choice(["xlsx", "json"]), default="xlsx", show_default=True)
@click.option("--list-plants", is_flag=True, help="List the kinds of planted problem and exit.")
def synth(study_dir: Path, out: Path, count: int, site: str, seed: int, plants: str, fmt: str, list_plants: bool) -> None:
    """Generate synthetic returned CRFs: realistic subjects, optionally with planted problems.

    Example: python build_crf.py synth --out out --subjects 5 --plant missing-required,dose-deviation --format json
    """
    from .synth import PLANTS, PlantNotApplicable, generate, skipped

    if list_plants:
        for name, kind in sorted(PLANTS.items()):
            click.echo(f"{name:26} {kind.help}")
        return
    kinds = [k.strip() for k in plants.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in PLANTS]
    if unknown:
        raise click.BadParameter(f"unknown kind(s) {', '.join(unknown)}; known: {', '.join(sorted(PLANTS))}", param_hint="--plant")
    study = _load(study_dir)
    try:
        written = generate(study, out / "returned", count, site=site, seed=seed, plants=kinds, fmt=fmt,  # type: ignore[arg-type]  # fmt: click.Choice gives one of the literal formats
                           manifest=out / "planted.json")  # beside returned/, which gets validated
    except PlantNotApplicable as exc:
        raise click.ClickException(str(exc))
    for note in skipped(study):  # a study whose forms declare no roles: filled from its schemas alone
        click.echo(f"note: {note}")
    click.echo(f"{len(written)} subject file(s) in {out / 'returned'}" + (f"; planted problems listed in {out / 'planted.json'}" if kinds else ""))


@build.command()
@study_option
@click.argument("workbooks", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for the new workbooks.")
def migrate(study_dir: Path, workbooks: tuple[Path, ...], out: Path) -> None:
    """Carry returned workbooks of an older form version into workbooks of the current one.

    Every value is matched by its field path; what cannot be carried (a field the current forms no longer
    have, a value the current item refuses) is listed, here and in OUT/<workbook>.migration.txt.
    Exit 0 when everything was carried, 1 when something was not, 2 on a file that cannot be migrated.

    Example: python build_crf.py migrate returned/BEL-NMOSD_01-001.xlsx --out migrated
    """
    from .migrate import migrate_file
    from .readers.base import Unusable

    study = _load(study_dir)
    status = 0
    for path in workbooks:
        try:
            migration, target = migrate_file(study, path, out)
        except Unusable as exc:
            click.echo(f"{path}: {exc.problem}. {exc.fix}.", err=True)
            status = 2
            continue
        except ValueError as exc:
            click.echo(str(exc), err=True)
            status = 2
            continue
        click.echo(migration.listing(target))
        if migration.not_carried and status == 0:
            status = 1
    sys.exit(status)


@build.command()
@study_option
@out_option
def odm(study_dir: Path, out: Path) -> None:
    """Export the study definition as one CDISC ODM 1.3.2 metadata file (docs/interop.md).

    Example: python build_crf.py odm --out out
    """
    from .interop.odm_export import metadata_file_name, study_to_odm

    study = _load(study_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / metadata_file_name(study)
    target.write_bytes(study_to_odm(study))
    click.echo(f"ODM 1.3.2 metadata written to {target}")


@build.command()
@study_option
@out_option
def redcap(study_dir: Path, out: Path) -> None:
    """Export the study as a REDCap project: data dictionary, events, instrument-event mapping, and what REDCap cannot express.

    Example: python build_crf.py redcap --out out
    """
    from .interop.redcap_export import file_names, study_to_redcap

    study = _load(study_dir)
    project = study_to_redcap(study)
    names = file_names(study)
    out.mkdir(parents=True, exist_ok=True)
    (out / names["dictionary"]).write_bytes(project.dictionary)
    (out / names["events"]).write_bytes(project.events)
    (out / names["mapping"]).write_bytes(project.mapping)
    (out / names["report"]).write_text(project.report(study), encoding="utf-8")
    click.echo(f"REDCap data dictionary, events and instrument-event mapping written to {out}; "
               f"{len(project.not_expressible)} thing(s) REDCap cannot express are listed in {out / names['report']}")


@build.group("import")
def import_() -> None:
    """Make a study definition folder from another system's study design (ODM, REDCap); docs/interop.md."""


def _write_imported(draft: object, out: Path) -> None:
    from .interop.studywriter import ImportRefused, write_study

    try:
        study = write_study(draft, out)  # type: ignore[arg-type]  # draft: the importers' StudyDraft, typed object here to keep their import lazy
    except ImportRefused as exc:
        _print_notes(exc.notes)
        raise click.ClickException(f"nothing was imported ({len(exc.notes)} problem(s) above)")
    _print_notes(draft.notes)  # type: ignore[attr-defined]  # same draft
    click.echo(f"Study {study.id} written to {out}: {len(study.visits)} visit(s), {len(study.forms())} form(s), "
               f"{len(study.logs)} log(s), {sum(len(f.items) for f in study.forms())} item(s); notes in {out / 'IMPORT-NOTES.md'}. "
               f"Next: python build_crf.py check --study {out}")


def _print_notes(notes: list) -> None:
    for note in notes:
        click.echo(str(note), err=note.kind in ("refused", "warning"))


@import_.command("odm")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Study folder to create, e.g. schemas/my-study (must not exist).")
@click.option("--xsd", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Refuse the file unless it is valid against this XML Schema (e.g. ODM1-3-2.xsd).")
@click.option("--subjects", "subjects_out", type=click.Path(file_okay=False, path_type=Path),
              help="Also convert the file's ClinicalData into subject documents (JSON, one per subject) in this folder, for validate.py.")
def import_odm(source: Path, out: Path, xsd: Optional[Path], subjects_out: Optional[Path]) -> None:
    """Import a CDISC ODM 1.3/1.3.1/1.3.2 metadata file as a study definition folder.

    Example: python build_crf.py import odm study.xml --out schemas/my-study --subjects out/my-study-data
    """
    from .interop.odm_import import clinical_to_documents, read_odm_with_maps
    from .interop.studywriter import ImportRefused

    try:
        draft, maps = read_odm_with_maps(source, xsd=xsd)
    except ImportRefused as exc:
        _print_notes(exc.notes)
        raise click.ClickException(f"nothing was imported ({len(exc.notes)} problem(s) above)")
    _write_imported(draft, out)
    if subjects_out is not None:
        docs, notes = clinical_to_documents(source, maps, load_study(out))
        _print_notes(notes)
        _write_documents(docs, subjects_out, out)


def _write_documents(docs: list, folder: Path, study_dir: Path) -> None:
    import json

    folder.mkdir(parents=True, exist_ok=True)
    for doc in docs:
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in doc["subject"]) or "subject"
        (folder / f"{name}.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    click.echo(f"{len(docs)} subject document(s) in {folder}: python validate.py {folder} --study {study_dir}")


@import_.command("redcap")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Study folder to create, e.g. schemas/my-study (must not exist).")
@click.option("--events", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="REDCap events export (default: event.csv or events.csv beside the dictionary).")
@click.option("--records", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="REDCap records export (default: data.csv or records.csv beside the dictionary): tells which instruments each event collects and which repeat.")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="REDCap instrument-event mapping (arm_num, unique_event_name, form): which instruments each event collects.")
@click.option("--subjects", "subjects_out", type=click.Path(file_okay=False, path_type=Path),
              help="Also convert the records into subject documents (JSON, one per record) in this folder, for validate.py.")
def import_redcap(source: Path, out: Path, events: Optional[Path], records: Optional[Path], mapping: Optional[Path], subjects_out: Optional[Path]) -> None:
    """Import a REDCap data dictionary (CSV, display or API headers) as a study definition folder.

    Example: python build_crf.py import redcap dictionary.csv --out schemas/my-study --subjects out/my-study-records
    """
    from .interop.redcap import read_redcap, records_to_documents
    from .interop.studywriter import ImportRefused

    try:
        imported = read_redcap(source, events=events, records=records, mapping=mapping)
    except ImportRefused as exc:
        _print_notes(exc.notes)
        raise click.ClickException(f"nothing was imported ({len(exc.notes)} problem(s) above)")
    _write_imported(imported.draft, out)
    records = records or next((source.parent / n for n in ("data.csv", "records.csv") if (source.parent / n).is_file()), None)
    if subjects_out is not None:
        if records is None:
            raise click.UsageError("--subjects needs the records export: give --records FILE")
        docs, notes = records_to_documents(imported, load_study(out), records)
        _print_notes(notes)
        _write_documents(docs, subjects_out, out)


# -- validate ----------------------------------------------------------------------------------
store_option = click.option("--store", default=None, metavar="STORE",
                            help="Study store to record this run in: a file (SQLite, created if new) or a postgresql:// URL.")
wait_option = click.option("--store-wait", type=click.FloatRange(min=0), default=30.0, show_default=True,
                           help="Seconds to wait for another run that is writing to the store.")


class StoreUsageError(click.ClickException):
    """The store cannot be used (another study, newer version, locked, server down): exit 2, nothing written."""

    exit_code = 2


def _store_checks(paths: tuple[Path, ...], store: Optional[str], received: Optional[str]) -> str:
    if store is None:
        if received is not None:
            raise click.UsageError("--received is when files reached the study store: give --store too")
        return ""
    from .readers import discover
    from .store import parse_received  # here: SQLAlchemy costs a third of a second to import, a run without a store needs none
    if "://" not in store and any(Path(store).resolve() == p.resolve() for p in discover(paths)):
        raise click.UsageError(f"--store {store} is one of the input files; input files are never overwritten")
    try:
        return parse_received(received)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--received")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and a.samefile(b)
    except OSError:
        return False


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@study_option
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv", "xlsx", "html", "odm"]), default="text", show_default=True,
              help="Report format; odm: the data read as CDISC ODM 1.3.2 ClinicalData, with the findings as annotations.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report to this file (default: standard output; required for xlsx).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Worker processes (default: number of cores).")
@click.option("--today", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Date the future-date checks compare with (default: today); fix it to reproduce a report.")
@click.option("--timestamp", default=None, help="Text to print as the report's generation time (default: none, so reports are reproducible).")
@click.option("--progress/--no-progress", default=None, help="Progress bar on standard error (default: for 10 files or more on a terminal).")
@store_option
@click.option("--received", default=None, help="With --store: when the files were received, e.g. 2026-11-25T14:30 (default: now).")
@wait_option
@click.option("--casebook", "casebook_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write each subject's casebook PDF (returned data laid out as the CRF book, findings beside items) into this folder.")
@click.option("--page-size", type=click.Choice(["A4", "Letter"]), default="A4", show_default=True, help="Page size of the casebooks.")
def validate(paths: tuple[Path, ...], study_dir: Path, fmt: str, output: Optional[Path], jobs: Optional[int],
             today: Optional[object], timestamp: Optional[str], progress: Optional[bool], store: Optional[str] = None,
             received: Optional[str] = None, store_wait: float = 30.0, casebook_dir: Optional[Path] = None,
             page_size: str = "A4") -> None:
    """Check returned CRFs (workbooks .xlsx/.xlsm, filled-in fillable PDFs, JSON subject documents; folders are searched) and report.

    Exit status: 0 nothing needs action, 1 errors, open queries or major deviations, 2 usage error.

    Example: python validate.py returned/ --format html --output report.html --casebook casebooks/
    """
    from .readers import discover
    from .reports import write_report
    from .validation import validate as run

    if fmt == "xlsx" and output is None:
        raise click.UsageError("--format xlsx writes a workbook: give --output FILE.xlsx")
    if output is not None:
        resolved = output.resolve()
        if any(resolved == p.resolve() or _same_file(output, p) for p in discover(paths)):  # a hard link has another path
            raise click.UsageError(f"--output {output} is one of the input files; input files are never overwritten")
    received_at = _store_checks(paths, store, received)
    try:
        study = load_study(study_dir)
    except StudyDefinitionError as exc:  # the command was given a wrong --study: a usage error, not a finding
        for problem in exc.problems:
            click.echo(f"problem: {problem}", err=True)
        raise click.UsageError(f"--study {study_dir} is not a usable study definition ({len(exc.problems)} problem(s) above)")
    count = sum(1 for _ in discover(paths))
    if count == 0:
        raise click.UsageError("no returned CRFs (.xlsx, .xlsm, .pdf, .json) found in " + ", ".join(str(p) for p in paths))
    show = progress if progress is not None else (count >= 10 and sys.stderr.isatty())
    bar = click.progressbar(length=count, label="Checking", file=sys.stderr) if show else None
    done = [0]

    def step(i: int, total: int) -> None:
        if bar is not None:
            bar.update(i - done[0])
            done[0] = i

    if bar is not None:
        bar.__enter__()
    try:
        result = run(study, list(paths), jobs=jobs, progress=step, generated=timestamp, today=today.date() if today else None,  # type: ignore[attr-defined]  # today: click.DateTime gives a datetime
                     keep_values=store is not None)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    from .reports.text_report import render_summary

    store_line = ""
    if store is not None:
        from .store import StoreError, record_result, with_store
        try:
            summary = record_result(store, study, result, received_at, wait=store_wait)
        except StoreError as exc:
            raise StoreUsageError(str(exc))
        result = with_store(result, summary)
        store_line = "\n" + summary.describe()
    else:
        for o in result.files:
            if o.listing is not None:
                click.echo(f"note: {o.file} is an answered query listing; its answers are recorded only with --store STUDY.db", err=True)

    if casebook_dir is not None:
        from .casebook import write_casebooks
        from .validation import display_name

        sources = {display_name(p): p for p in discover(paths)}
        histories = None
        if store is not None:  # the audit trail and query history of each subject, as recorded just now
            from .store.reports import subject_history

            day = today.date().isoformat() if today else None  # type: ignore[attr-defined]  # today: click.DateTime gives a datetime
            subjects = sorted({o.subject.subject for o in result.files if o.subject is not None})
            histories = _in_store(store, study, lambda conn: {s: subject_history(conn, s, day) for s in subjects}, store_wait)
        books = write_casebooks(result, sources, casebook_dir, page_size=page_size, today=today.date() if today else None,  # type: ignore[attr-defined]  # as above
                                histories=histories)
        click.echo(f"{len(books)} casebook(s) written to {casebook_dir}", err=True)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        companion = _write_report_file(result, fmt, output)
        also = f"\nEvery finding is listed in {companion} (the HTML report lists the first rows of each listing)" if companion else ""
        click.echo(render_summary(result) + store_line + f"\nReport written to {output}" + also, err=True)
    else:
        write_report(result, fmt, sys.stdout.buffer)  # streamed: a million findings are never one text in memory
        sys.stdout.flush()
        if fmt != "text" or store_line:
            click.echo((render_summary(result) if fmt != "text" else "") + store_line, err=True)
    sys.exit(1 if result.needs_action else 0)


def _write_report_file(result: Any, fmt: str, output: Path) -> Optional[Path]:
    """The report streamed into a new file beside `output`, then put in its place: an interrupted run leaves
    the previous report whole, never half a report."""
    import os

    from .reports import write_report

    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as out:
            companion = write_report(result, fmt, out, path=output)
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return companion


DEFAULT_RULES_DOC = Path(__file__).resolve().parent.parent / "docs" / "edit-checks.md"


@build.command("rules-doc")
@study_option
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_RULES_DOC,
              show_default="docs/edit-checks.md", help="Markdown file to write.")
@click.option("--check", "check_only", is_flag=True, help="Do not write: exit 1 if the file differs from the rules.")
def rules_doc(study_dir: Path, out_file: Path, check_only: bool) -> None:
    """Write the edit-check listing (every rule: id, forms, severity, category, message, assumption) from the rules files.

    Example: python build_crf.py rules-doc
    """
    from .rules import RuleSet
    from .rules.docs import render_markdown

    study = _load(study_dir)
    try:
        ruleset = RuleSet.load(study)
    except StudyDefinitionError as exc:
        for problem in exc.problems:
            click.echo(f"problem: {problem}", err=True)
        raise click.ClickException(f"{len(exc.problems)} problem(s) in the rules of {study_dir}")
    text = render_markdown(ruleset)
    if check_only:
        current = out_file.read_text(encoding="utf-8") if out_file.is_file() else ""
        if current != text:
            raise click.ClickException(f"{out_file} is out of date: run python build_crf.py rules-doc")
        click.echo(f"{out_file} is up to date ({len(ruleset.rules)} rules)")
        return
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(text, encoding="utf-8")
    click.echo(f"{len(ruleset.rules)} rules written to {out_file}")


DEFAULT_REPORT_DOC = Path(__file__).resolve().parent.parent / "docs" / "report-format.md"


@build.command("codes-doc")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_REPORT_DOC,
              show_default="docs/report-format.md", help="Markdown file whose table of finding codes is rewritten.")
@click.option("--check", "check_only", is_flag=True, help="Do not write: exit 1 if the table differs from the catalogue.")
def codes_doc(out_file: Path, check_only: bool) -> None:
    """Write the table of structural finding codes (severity, category, when, what to do) from crf/catalogue.py.

    Example: python build_crf.py codes-doc --check
    """
    from .catalogue import CODES, with_table

    current = out_file.read_text(encoding="utf-8") if out_file.is_file() else ""
    try:
        text = with_table(current)
    except ValueError as exc:
        raise click.ClickException(f"{out_file}: {exc}")
    if check_only:
        if current != text:
            raise click.ClickException(f"{out_file} is out of date: run python build_crf.py codes-doc")
        click.echo(f"{out_file} is up to date ({len(CODES)} codes)")
        return
    out_file.write_text(text, encoding="utf-8")
    click.echo(f"{len(CODES)} finding codes written to {out_file}")


# -- the study store: queries and reports (validate.py queries ..., validate.py store ...) ---------------
STORE_GROUPS = ("queries", "store")
required_store = click.option("--store", required=True, metavar="STORE", help="The study store: its file, or a postgresql:// URL.")
as_of_option = click.option("--today", "today", default=None, help="Count days open to this date (default: the last time files were received).")


def _store_study(study_dir: Path) -> Study:
    try:
        return load_study(study_dir)
    except StudyDefinitionError as exc:
        raise click.UsageError(f"--study {study_dir} is not a usable study definition ({len(exc.problems)} problem(s))")


def _in_store(store: str, study: Study, work: Callable[[Connection], T], wait: float = 30.0) -> T:
    """Run work(conn) inside the store's transaction; store problems become one clear message (exit 2)."""
    from .store import StoreError
    from .store.database import transaction

    try:
        with transaction(store, study.id, wait, create=False) as conn:
            return work(conn)
    except StoreError as exc:
        raise StoreUsageError(str(exc))


@click.group("queries")
def queries_group() -> None:
    """The query life cycle in the study store: list, close, re-open, the site's listing.

    Example: python validate.py queries close 3f2a9c1d0b7e --reason "confirmed as correct" --by "J. Smith" --store study.db
    """


@queries_group.command("list")
@study_option
@required_store
@click.option("--site", default=None, help="Only this site.")
@click.option("--subject", default=None, help="Only this subject.")
@click.option("--status", "statuses", multiple=True, help="Only these statuses (open, persisting, answered, reopened, resolved, closed).")
@as_of_option
def queries_list(study_dir: Path, store: str, site: Optional[str], subject: Optional[str], statuses: tuple[str, ...], today: Optional[str]) -> None:
    """List the queries of the store with status and days open.

    Example: python validate.py queries list --store study.db --site 01 --status open --status persisting
    """
    from .store import lifecycle
    from .store.reports import as_of, query_rows

    unknown = [s for s in statuses if s not in lifecycle.STATUSES]
    if unknown:
        raise click.BadParameter(f"unknown status {', '.join(unknown)}; use {', '.join(lifecycle.STATUSES)}", param_hint="--status")
    study = _store_study(study_dir)

    def work(conn: Connection) -> list[tuple[Any, int]]:
        day = as_of(conn, today)
        return [(q, lifecycle.days_open(q, day)) for q in query_rows(conn, site, set(statuses) or None, subject)]
    rows = _in_store(store, study, work)
    for q, days in rows:
        where = " ".join(x for x in (q.visit, q.sheet, q.cell) if x)
        click.echo(f"{q.id}  {q.site}  {q.subject}  {q.status:10} {days:4d} d  {q.rule:10} {where}  {q.message[:90]}")
    click.echo(f"{len(rows)} quer{'y' if len(rows) == 1 else 'ies'}", err=True)


def _query_action(which: str, study_dir: Path, store: str, query_ids: tuple[str, ...], reason: str, by: str, at: Optional[str], store_wait: float) -> None:
    from .store import StoreError, close_query, parse_received, reopen_query
    from .store.lifecycle import QueryActionError

    if not reason.strip():
        raise click.BadParameter("give the reason, e.g. --reason \"confirmed as correct by the site\"", param_hint="--reason")
    study = _store_study(study_dir)
    try:
        when = parse_received(at)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--at")
    action = close_query if which == "close" else reopen_query
    try:
        action(store, study, query_ids, reason.strip(), by.strip(), when, wait=store_wait)
    except StoreError as exc:
        raise StoreUsageError(str(exc))
    except QueryActionError as exc:
        raise click.ClickException(f"{exc}; nothing was changed")
    click.echo(f"{len(query_ids)} quer{'y' if len(query_ids) == 1 else 'ies'} {'closed' if which == 'close' else 're-opened'}: {', '.join(query_ids)}")


@queries_group.command("close")
@study_option
@required_store
@click.argument("query_ids", nargs=-1, required=True)
@click.option("--reason", required=True, help="Why it is closed, e.g. 'confirmed as correct'; kept with the query.")
@click.option("--by", required=True, help="Who closes it (the data manager's name).")
@click.option("--at", default=None, help="When (default: now); e.g. 2026-11-25T14:30.")
@wait_option
def queries_close(study_dir: Path, store: str, query_ids: tuple[str, ...], reason: str, by: str, at: Optional[str], store_wait: float) -> None:
    """Close queries with a reason. A closed query still found in later returns stays closed.

    Example: python validate.py queries close 3f2a9c1d0b7e --reason "confirmed as correct" --by "J. Smith" --store study.db
    """
    _query_action("close", study_dir, store, query_ids, reason, by, at, store_wait)


@queries_group.command("reopen")
@study_option
@required_store
@click.argument("query_ids", nargs=-1, required=True)
@click.option("--reason", required=True, help="Why it is re-opened.")
@click.option("--by", required=True, help="Who re-opens it.")
@click.option("--at", default=None, help="When (default: now).")
@wait_option
def queries_reopen(study_dir: Path, store: str, query_ids: tuple[str, ...], reason: str, by: str, at: Optional[str], store_wait: float) -> None:
    """Re-open closed or resolved queries.

    Example: python validate.py queries reopen 3f2a9c1d0b7e --reason "source shows another value" --by "J. Smith" --store study.db
    """
    _query_action("reopen", study_dir, store, query_ids, reason, by, at, store_wait)


@queries_group.command("listing")
@study_option
@required_store
@click.option("--site", required=True, help="The site the listing is for.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Workbook to write (.xlsx).")
@as_of_option
def queries_listing(study_dir: Path, store: str, site: str, output: Path, today: Optional[str]) -> None:
    """Write the site's query listing: waiting queries with status, days open and the previous answer.

    The site answers in the yellow columns and sends it back with the corrected workbooks:
    python validate.py returned/ answered-listing.xlsx --store study.db

    Example: python validate.py queries listing --store study.db --site 01 --output queries-site-01.xlsx
    """
    from .store.reports import listing_xlsx

    study = _store_study(study_dir)
    data = _in_store(store, study, lambda conn: listing_xlsx(conn, study, site, today))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(data)
    click.echo(f"Query listing of site {site} written to {output}", err=True)


@click.group("store")
def store_group() -> None:
    """Reports from the study store: a subject's history, the per-site dashboard.

    Example: python validate.py store dashboard --store study.db --out reports/
    """


@store_group.command("history")
@study_option
@required_store
@click.argument("subject")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@as_of_option
def store_history(study_dir: Path, store: str, subject: str, fmt: str, today: Optional[str]) -> None:
    """A subject's history: returns, what changed (old -> new, which return, which cell), queries and their events.

    Example: python validate.py store history 01-001 --store study.db
    """
    import json as json_module

    from .store.reports import history_text, subject_history

    study = _store_study(study_dir)
    history = _in_store(store, study, lambda conn: subject_history(conn, subject, today))
    if not history["returns"]:
        raise click.ClickException(f"no return of subject {subject} is recorded in {store}")
    if fmt == "json":
        click.echo(json_module.dumps(history, indent=1, ensure_ascii=False))
    else:
        click.echo(history_text(history), nl=False)


@store_group.command("odm")
@study_option
@required_store
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="ODM file to write.")
def store_odm(study_dir: Path, store: str, output: Path) -> None:
    """The audit trail as a transactional CDISC ODM 1.3.2 file: every return's values with AuditRecords, queries as annotations.

    Example: python validate.py store odm --store study.db --output audit.xml
    """
    from .interop.odm_audit import store_to_odm

    study = _store_study(study_dir)
    data = _in_store(store, study, lambda conn: store_to_odm(conn, study))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(data)
    click.echo(f"ODM 1.3.2 audit trail of {store} written to {output}")


@store_group.command("dashboard")
@study_option
@required_store
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder for dashboard-site-NN.html.")
@click.option("--site", "only_site", default=None, help="Only this site (default: every site in the store).")
@as_of_option
def store_dashboard(study_dir: Path, store: str, out_dir: Path, only_site: Optional[str], today: Optional[str]) -> None:
    """Write an HTML dashboard per site: queries by status and age, opened/resolved per return, subject x visit grid.

    Example: python validate.py store dashboard --store study.db --out reports/
    """
    from .store.reports import dashboard_html, sites

    study = _store_study(study_dir)

    def work(conn: Connection) -> dict[str, bytes]:
        return {site: dashboard_html(conn, study, site, today) for site in ([only_site] if only_site else sites(conn))}
    pages = _in_store(store, study, work)
    out_dir.mkdir(parents=True, exist_ok=True)
    for site, data in pages.items():
        (out_dir / f"dashboard-site-{site}.html").write_bytes(data)
    click.echo(f"{len(pages)} dashboard(s) written to {out_dir}", err=True)


def validate_main(argv: Optional[list[str]] = None) -> None:
    """validate.py: `queries ...` and `store ...` are the store's commands; anything else is files to check."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in STORE_GROUPS and not Path(args[0]).exists():
        group = queries_group if args[0] == "queries" else store_group
        group(args=args[1:], prog_name=f"validate.py {args[0]}")
    else:
        validate(args=args, prog_name="validate.py")
