"""What every ODM exporter and importer shares: namespaces, our extension Alias contexts, safe parsing."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from lxml import etree

ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"  # shared by ODM 1.3, 1.3.1 and 1.3.2
XML_NS = "http://www.w3.org/XML/1998/namespace"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
STANDARD_NAMESPACES = {ODM_NS, XML_NS, DS_NS, XSI_NS}
ACCEPTED_VERSIONS = ("1.3", "1.3.1", "1.3.2")

# Alias contexts by which our export carries what ODM 1.3.2 has no element for. Plain Alias elements keep
# the file valid against the official XSD (an extension namespace would not be); docs/interop.md lists them.
ALIAS_DAY = "open-ecrf:day"  # StudyEventDef: protocol day (Day 0 = first infusion)
ALIAS_WEEK = "open-ecrf:week"
ALIAS_WINDOW = "open-ecrf:window"  # StudyEventDef: "-3/+3" days before/after the target day
ALIAS_WINDOW_ASSUMPTION = "open-ecrf:window-assumption"
ALIAS_SPONSOR = "open-ecrf:sponsor"  # Protocol
ALIAS_DOSING = "open-ecrf:dosing"  # Protocol: JSON object, the dosing rule of study.json
ALIAS_STUDY_ASSUMPTION = "open-ecrf:assumption"  # Protocol: "open-ecrf:assumption:<id>" = text, study.json's assumptions
ALIAS_ANCHOR = "open-ecrf:window-anchor"  # StudyEventDef: what the window counts from when not Day 0
ALIAS_KIND = "open-ecrf:visit-kind"  # screening, scheduled, unscheduled
ALIAS_INFUSION = "open-ecrf:infusion"
ALIAS_VISIT = "open-ecrf:visit"  # StudyEventDef: our visit id
ALIAS_REPEAT_SHEETS = "open-ecrf:repeat-sheets"  # StudyEventDef of a repeating visit: blank instances a new workbook offers
ALIAS_REPEAT_LINK = "open-ecrf:repeat-link"  # StudyEventDef of a repeating visit: JSON {"item", "log", "log_item"} of study.json
ALIAS_LOG = "open-ecrf:log"  # FormDef of a running log: our log id
ALIAS_ROWS = "open-ecrf:log-rows"  # FormDef of a running log: rows offered on paper
ALIAS_FORM = "open-ecrf:form"  # FormDef: the form (module) id the instance is made of
ALIAS_INSTANCE = "open-ecrf:instance"  # FormDef: the form instance name within its visit (VS_PRE)
ALIAS_FORM_VERSION = "open-ecrf:form-version"
ALIAS_FORM_CODE = "open-ecrf:form-code"
ALIAS_FIXED = "open-ecrf:fixed"  # FormDef: JSON object of the items fixed for this instance
ALIAS_ITEM = "open-ecrf:item"  # ItemDef: our item id
ALIAS_FORMAT = "open-ecrf:kind"  # ItemDef: item kind when the DataType is ambiguous (partial-date, multi-choice)
ALIAS_PATTERN = "open-ecrf:pattern"
ALIAS_MIN_ITEMS = "open-ecrf:min-items"
ALIAS_REFERENCE_RANGE = "open-ecrf:reference-range"  # "low/high"
ALIAS_LOCAL_RANGE = "open-ecrf:local-range"  # the items holding the site laboratory's low and high limit
ALIAS_REQUIRED_WITH = "open-ecrf:required-with"
ALIAS_SDTM_WHERE = "open-ecrf:sdtm-where"
ALIAS_DERIVED_LABEL = "open-ecrf:derived-label"  # x-derived-label: the words printed for a calculated item
ALIAS_C_CODE = "nci:ExtCodeID"  # the context CDISC controlled terminology uses for NCI C-codes
EXPRESSION_CONTEXT = "open-ecrf"  # FormalExpression in our expression language (docs/study-definition.md)
XPATH_CONTEXT = "XPath"


def odm(tag: str) -> str:
    return f"{{{ODM_NS}}}{tag}"


@dataclass(frozen=True)
class XmlProblem:
    """A located problem in an XML file: what an importer prints instead of a traceback."""

    file: str
    line: Optional[int]
    column: Optional[int]
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f", line {self.line}"
            if self.column:
                where += f", column {self.column}"
        return f"{where}: {self.message}"


class OdmFileError(Exception):
    def __init__(self, problems: list[XmlProblem]):
        self.problems = problems
        super().__init__("\n".join(map(str, problems)))


MAX_ODM_BYTES = 200 * 1024 * 1024


def parse_untrusted(path: Path) -> etree._ElementTree:
    """Parse an XML file from elsewhere: no entity expansion, no network, no huge trees, no DTD.

    A DOCTYPE is refused outright: ODM never needs one, and it is how entity bombs and external
    entities (XXE) get in.
    """
    display = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise OdmFileError([XmlProblem(display, None, None, f"cannot be read: {exc.strerror}")])
    if size > MAX_ODM_BYTES:
        raise OdmFileError([XmlProblem(display, None, None, f"is {size // (1024 * 1024)} MB, more than the {MAX_ODM_BYTES // (1024 * 1024)} MB an ODM study file can sensibly be")])
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False,
                             dtd_validation=False, remove_comments=True, remove_pis=True)
    try:
        tree = etree.parse(str(path), parser)
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (None, None)
        message = exc.msg or "not well-formed XML"
        raise OdmFileError([XmlProblem(display, line, column, f"malformed XML: {message}; the file must be well-formed ODM XML (export it again)")])
    docinfo = tree.docinfo
    if docinfo.doctype or (docinfo.internalDTD is not None) or (docinfo.externalDTD is not None):
        raise OdmFileError([XmlProblem(display, 1, None, "the file declares a DOCTYPE (entities or an external DTD); ODM files never need one and it is refused as unsafe (entity bomb / external entity). Remove the DOCTYPE and import again")])
    for node in tree.iter(etree.Entity):  # an entity reference left unexpanded
        raise OdmFileError([XmlProblem(display, node.sourceline, None, f"entity reference &{node.name}; is not allowed; write the text itself")])
    return tree


def xsd_errors(document: etree._ElementTree | bytes, xsd_path: Path) -> list[str]:
    """Every error of a document against an XML Schema (e.g. the official ODM1-3-2.xsd), with its line."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    schema = etree.XMLSchema(etree.parse(str(xsd_path), parser))
    tree = etree.ElementTree(etree.fromstring(document, parser)) if isinstance(document, bytes) else document
    if schema.validate(tree):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]
