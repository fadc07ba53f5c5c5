"""The cmi5 course structure reader (quartz §13, §14): a course package (a zip with ``cmi5.xml``
at its root, or a bare ``cmi5.xml``) to a ``CourseStructure``.

The XML is parsed without a DTD, entity expansion, network access or huge-tree mode (a
document with a DOCTYPE is refused), validated against ``CourseStructure.xsd`` (the current
namespace or the older ``http://www.adlnet.gov/cmi5/CourseStructure.xsd``), then checked for what
a schema cannot state: ids are absolute IRIs unique across the course, its blocks, AUs and
objectives; objective references resolve; an AU url is an http(s) URL or a path naming a file of
the zip package (§14.1, §14.2) and its query does not use the cmi5 launch parameters (§8.1).
Every value has its leading and trailing whitespace removed (§13.1); defaults are applied
(launchMethod AnyWindow, moveOn NotApplicable). Elements and attributes of other namespaces
(§13.1.5 vendor extensions) are ignored.

Every refusal is a ``CourseStructureError`` whose message names the element (by its id, or by
its line in ``cmi5.xml``).

Pure: no network, no database; reads only the bytes it is given and ``CourseStructure.xsd``.
"""

from __future__ import annotations

import io
import posixpath
import re
import struct
import threading
import zipfile
import zlib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from lxml import etree

from lrs.xapi.formats import is_iri

NAMESPACE = "https://w3id.org/xapi/profiles/cmi5/v1/CourseStructure.xsd"
OLD_NAMESPACE = "http://www.adlnet.gov/cmi5/CourseStructure.xsd"
NAMESPACES = (NAMESPACE, OLD_NAMESPACE)

STRUCTURE_NAME = "cmi5.xml"
MAX_MEMBERS = 10_000
"""Most members a zip package may hold (a cmi5 package is content, not an archive of archives)."""

LAUNCH_PARAMETERS = ("endpoint", "fetch", "actor", "registration", "activityId")
"""The query parameters the LMS adds to an AU's url at launch (§8.1); the url must not use them."""

_XSD = Path(__file__).with_name("CourseStructure.xsd")
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_BAD_URL_CHARACTER = re.compile(r'[\x00-\x20\x7f<>"\\]')
_MAX_SCHEMA_ERRORS = 5
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
    struct.error,
    ValueError,
    OSError,
    EOFError,
)
"""What ``zipfile`` raises for a damaged or unsupported archive (OSError: seeks outside the data)."""


class CourseStructureError(ValueError):
    """A course package or structure the LMS refuses; the message names the element (e.g.
    ``au "https://…/au1" <url>: …`` or ``line 12, <au>: …``)."""


@dataclass(frozen=True, slots=True)
class Objective:
    id: str
    title: str
    description: str


@dataclass(frozen=True, slots=True)
class AU:
    id: str
    """The publisher id (an absolute IRI)."""
    title: str
    description: str
    url: str
    """As written (trimmed): an http(s) URL, or a path (and query) relative to the package root."""
    launch_method: str = "AnyWindow"
    move_on: str = "NotApplicable"
    mastery_score: float | None = None
    launch_parameters: str | None = None
    entitlement_key: str | None = None
    activity_type: str | None = None
    objectives: tuple[str, ...] = ()
    """The ids of the objectives the AU refers to."""


@dataclass(frozen=True, slots=True)
class Block:
    id: str
    title: str
    description: str
    children: tuple[Block | AU, ...]
    objectives: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CourseStructure:
    id: str
    title: str
    description: str
    children: tuple[Block | AU, ...]
    objectives: tuple[Objective, ...] = ()

    def aus(self) -> list[tuple[AU, tuple[str, ...]]]:
        """Every AU in document order with the ids of the blocks around it, outermost first."""
        found: list[tuple[AU, tuple[str, ...]]] = []
        _walk(self.children, (), found, [])
        return found

    def blocks(self) -> list[tuple[Block, tuple[str, ...]]]:
        """Every block in document order with the ids of the blocks around it, outermost first."""
        found: list[tuple[Block, tuple[str, ...]]] = []
        _walk(self.children, (), [], found)
        return found


def _walk(
    children: tuple[Block | AU, ...],
    path: tuple[str, ...],
    aus: list[tuple[AU, tuple[str, ...]]],
    blocks: list[tuple[Block, tuple[str, ...]]],
) -> None:
    for child in children:
        if isinstance(child, AU):
            aus.append((child, path))
        else:
            blocks.append((child, path))
            _walk(child.children, (*path, child.id), aus, blocks)


@dataclass(frozen=True, slots=True)
class Package:
    structure: CourseStructure
    files: dict[str, bytes]
    """The zip members other than ``cmi5.xml`` by posix path (no leading "/"); {} for a bare
    ``cmi5.xml``."""


def title_text(langstrings: dict[str, str], preferred: str = "en") -> str:
    """The text in the preferred language (exactly, then a tag it prefixes, e.g. "en" for
    "en-US", then the same primary language), else the first; "" when there is none."""
    if not langstrings:
        return ""
    wanted = preferred.lower()
    primary = wanted.split("-")[0]
    tags = [(lang.lower(), text) for lang, text in langstrings.items()]
    for matches in (
        lambda tag: tag == wanted,
        lambda tag: tag.startswith(wanted + "-"),
        lambda tag: tag.split("-")[0] == primary,
    ):
        for tag, text in tags:
            if matches(tag):
                return text
    return next(iter(langstrings.values()))


# --- reading ---------------------------------------------------------------------------------


def read_structure(xml: bytes) -> CourseStructure:
    """The course structure of a bare ``cmi5.xml`` (every AU url must then be an http(s) URL)."""
    return _Reader(xml, None).read()


def read_package(data: bytes, *, max_bytes: int = 100 * 2**20) -> Package:
    """A course package: a zip (recognised by its signature) with ``cmi5.xml`` at its root, or a
    bare ``cmi5.xml``. ``max_bytes`` bounds the package and the total size of its uncompressed
    members."""
    if len(data) > max_bytes:
        raise CourseStructureError(f"the package is larger than {max_bytes} bytes")
    if data.startswith(_ZIP_SIGNATURES):
        xml, files = _unzip(data, max_bytes)
        return Package(_Reader(xml, files).read(), files)
    if data.startswith(_UTF16_BOMS) or data.removeprefix(_BOM).lstrip().startswith(b"<"):
        return Package(read_structure(data), {})
    raise CourseStructureError("the package is neither a zip file nor a cmi5.xml course structure (XML)")


def _unzip(data: bytes, max_bytes: int) -> tuple[bytes, dict[str, bytes]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except _ZIP_ERRORS as exc:
        raise CourseStructureError(f"the package is not a readable zip file: {exc}") from None
    if len(members) > MAX_MEMBERS:
        raise CourseStructureError(f"the zip package has {len(members)} members, more than {MAX_MEMBERS}")
    budget = max_bytes
    xml: bytes | None = None
    files: dict[str, bytes] = {}
    elsewhere: list[str] = []
    for info in members:
        name = _member_name(info.filename)
        if info.flag_bits & 0x1:
            raise CourseStructureError(f'zip member "{info.filename}": encrypted members are not supported')
        if info.is_dir() or not name or name.endswith("/"):
            continue
        if info.file_size > budget:
            raise CourseStructureError(
                f'the zip package uncompresses to more than {max_bytes} bytes (at "{info.filename}")'
            )
        content = _read_member(archive, info, budget, max_bytes)
        budget -= len(content)
        if name in files or (name == STRUCTURE_NAME and xml is not None):
            raise CourseStructureError(f'zip member "{info.filename}": the name is used twice')
        if name == STRUCTURE_NAME:
            xml = content
        else:
            files[name] = content
            if posixpath.basename(name) == STRUCTURE_NAME:
                elsewhere.append(name)
    if xml is None:
        where = f" (found {', '.join(elsewhere)})" if elsewhere else ""
        raise CourseStructureError(f"the zip package has no {STRUCTURE_NAME} at its root{where}")
    return xml, files


def _member_name(raw: str) -> str:
    name = raw.replace("\\", "/")
    segments = name.split("/")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name) or ".." in segments:
        raise CourseStructureError(f'zip member "{raw}": absolute names and names with ".." are refused')
    return "/".join(segment for segment in segments if segment not in ("", ".")) + (
        "/" if name.endswith("/") else ""
    )


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int, max_bytes: int) -> bytes:
    """The member's bytes, read in chunks so that a member lying about its size cannot exceed
    the budget."""
    chunks: list[bytes] = []
    read = 0
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(min(65536, budget - read + 1)):
                read += len(chunk)
                if read > budget:
                    raise CourseStructureError(
                        f'the zip package uncompresses to more than {max_bytes} bytes (at "{info.filename}")'
                    )
                chunks.append(chunk)
    except (*_ZIP_ERRORS, zlib.error, RuntimeError) as exc:
        raise CourseStructureError(f'zip member "{info.filename}": cannot be read: {exc}') from None
    return b"".join(chunks)


# --- the schema --------------------------------------------------------------------------------


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
    )


@cache
def _schema(namespace: str) -> tuple[etree.XMLSchema, threading.Lock]:
    text = _XSD.read_bytes()
    if namespace != NAMESPACE:
        text = text.replace(NAMESPACE.encode(), namespace.encode())
    schema = etree.XMLSchema(etree.fromstring(text, _parser()))
    return schema, threading.Lock()


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


# --- the structure -------------------------------------------------------------------------------


class _Reader:
    """One read of a course structure; ``files`` is the zip package's members (None: bare XML)."""

    def __init__(self, xml: bytes, files: dict[str, bytes] | None) -> None:
        self.xml = xml
        self.files = files
        self.ns = NAMESPACE
        self.ids: dict[str, etree._Element] = {}
        self.objective_ids: set[str] = set()
        self.references: list[tuple[etree._Element, str]] = []

    # parsing and validation

    def read(self) -> CourseStructure:
        root = self._parse()
        self._validate(root)
        return self._course(root)

    def _parse(self) -> etree._Element:
        no_doctype = f"{STRUCTURE_NAME}: a DOCTYPE (DTD, entities) is not allowed in a course structure"
        if b"<!DOCTYPE" in self.xml[:4096]:  # before the parser sees its entities (ASCII-compatible text)
            raise CourseStructureError(no_doctype)
        try:
            root = etree.fromstring(self.xml, _parser())
        except etree.XMLSyntaxError as exc:
            message = re.sub(r", line \d+, column \d+$", "", exc.msg or "")
            line = f" (line {exc.lineno})" if exc.lineno else ""
            raise CourseStructureError(f"{STRUCTURE_NAME} is not well-formed XML{line}: {message}") from None
        docinfo = root.getroottree().docinfo
        if docinfo.doctype or docinfo.internalDTD is not None:  # a DOCTYPE in another encoding
            raise CourseStructureError(no_doctype)
        qname = etree.QName(root)
        if qname.localname != "courseStructure" or qname.namespace not in NAMESPACES:
            found = f"<{qname.localname}>" + (
                f' in namespace "{qname.namespace}"' if qname.namespace else " without a namespace"
            )
            raise CourseStructureError(
                f"line {root.sourceline}, {found}: the root element must be <courseStructure> in namespace"
                f' "{NAMESPACE}" (or the older "{OLD_NAMESPACE}")'
            )
        self.ns = qname.namespace
        return root

    def _validate(self, root: etree._Element) -> None:
        schema, lock = _schema(self.ns)
        with lock:
            if schema.validate(root):
                return
            entries = list(schema.error_log)
        messages = [self._schema_message(root, entry) for entry in entries[:_MAX_SCHEMA_ERRORS]]
        more = f" (and {len(entries) - _MAX_SCHEMA_ERRORS} more)" if len(entries) > _MAX_SCHEMA_ERRORS else ""
        raise CourseStructureError("; ".join(messages) + more)

    def _schema_message(self, root: etree._Element, entry: etree._LogEntry) -> str:
        message = entry.message
        for namespace in NAMESPACES:
            message = message.replace("{" + namespace + "}", "")
        name = "?"
        if match := re.match(r"Element '([^']+)'(?:: |, )", message):
            name = match.group(1)
            message = message[match.end() :]
        where = ""
        try:
            found = root.getroottree().xpath(entry.path) if entry.path else []
        except etree.XPathError:
            found = []
        if found and isinstance(found[0], etree._Element):
            element = found[0]
            owner = next((e for e in element.iterancestors() if e.get("id")), None)
            if element.get("id"):
                where = f' "{element.get("id").strip()}"'
            elif owner is not None:
                where = f' (in <{_local(owner)}> "{owner.get("id").strip()}")'
        return f"line {entry.line}, <{name}>{where}: {message.rstrip('.')}"

    # the elements

    def _children(self, element: etree._Element) -> list[etree._Element]:
        """Child elements in the cmi5 namespace (comments, PIs and vendor extensions skipped)."""
        return [
            child
            for child in element
            if isinstance(child.tag, str) and etree.QName(child).namespace == self.ns
        ]

    def _child(self, element: etree._Element, name: str) -> etree._Element | None:
        return next((c for c in self._children(element) if _local(c) == name), None)

    def _langstrings(self, element: etree._Element, name: str) -> dict[str, str]:
        holder = self._child(element, name)
        strings: dict[str, str] = {}
        for langstring in self._children(holder) if holder is not None else ():
            lang = (langstring.get("lang") or "").strip()
            strings.setdefault(lang, (langstring.text or "").strip())
        return strings

    def _texts(self, element: etree._Element) -> tuple[str, str]:
        return (
            title_text(self._langstrings(element, "title")),
            title_text(self._langstrings(element, "description")),
        )

    def _id(self, element: etree._Element, attribute: str = "id") -> str:
        value = (element.get(attribute) or "").strip()
        name = _local(element)
        if not is_iri(value):
            raise CourseStructureError(
                f'line {element.sourceline}, <{name}> {attribute} "{value}": not an absolute IRI'
                " (cmi5 §3: IRIs are fully qualified, with a scheme)"
            )
        if attribute == "id":
            if (first := self.ids.get(value)) is not None:
                raise CourseStructureError(
                    f'line {element.sourceline}, <{name}> id "{value}": already the id of the'
                    f" <{_local(first)}> on line {first.sourceline} (ids are unique in a course structure)"
                )
            self.ids[value] = element
        return value

    def _objective_references(self, element: etree._Element) -> tuple[str, ...]:
        holder = self._child(element, "objectives")
        references: list[str] = []
        for reference in self._children(holder) if holder is not None else ():
            if reference.get("idref") is None:
                continue  # valid against the official XSD; it refers to nothing
            idref = self._id(reference, "idref")
            if idref not in references:
                references.append(idref)
                self.references.append((element, idref))
        return tuple(references)

    def _course(self, root: etree._Element) -> CourseStructure:
        course = self._child(root, "course")
        assert course is not None  # the schema requires it
        course_id = self._id(course)
        title, description = self._texts(course)
        objectives = self._objectives(root)
        children = self._members(root)
        for element, idref in self.references:
            if idref not in self.objective_ids:
                raise CourseStructureError(
                    f'{_local(element)} "{element.get("id").strip()}" <objectives>: objective "{idref}"'
                    " is not defined in the course's <objectives>"
                )
        structure = CourseStructure(course_id, title, description, children, objectives)
        if not structure.aus():
            raise CourseStructureError(f'course "{course_id}": the course structure has no AU')
        return structure

    def _objectives(self, root: etree._Element) -> tuple[Objective, ...]:
        holder = self._child(root, "objectives")
        objectives: list[Objective] = []
        for element in self._children(holder) if holder is not None else ():
            objective = Objective(self._id(element), *self._texts(element))
            self.objective_ids.add(objective.id)
            objectives.append(objective)
        return tuple(objectives)

    def _members(self, parent: etree._Element) -> tuple[Block | AU, ...]:
        members: list[Block | AU] = []
        for element in self._children(parent):
            if _local(element) == "au":
                members.append(self._au(element))
            elif _local(element) == "block":
                members.append(self._block(element))
        return tuple(members)

    def _block(self, element: etree._Element) -> Block:
        block_id = self._id(element)
        title, description = self._texts(element)
        objectives = self._objective_references(element)
        return Block(block_id, title, description, self._members(element), objectives)

    def _au(self, element: etree._Element) -> AU:
        au_id = self._id(element)
        title, description = self._texts(element)
        objectives = self._objective_references(element)
        url_element = self._child(element, "url")
        url = self._url(au_id, (url_element.text or "") if url_element is not None else "")
        activity_type = (element.get("activityType") or "").strip() or None
        if activity_type is not None and not is_iri(activity_type):
            raise CourseStructureError(f'au "{au_id}" activityType "{activity_type}": not an absolute IRI')
        return AU(
            id=au_id,
            title=title,
            description=description,
            url=url,
            launch_method=(element.get("launchMethod") or "").strip() or "AnyWindow",
            move_on=(element.get("moveOn") or "").strip() or "NotApplicable",
            mastery_score=self._mastery_score(au_id, element.get("masteryScore")),
            launch_parameters=self._text(element, "launchParameters"),
            entitlement_key=self._text(element, "entitlementKey"),
            activity_type=activity_type,
            objectives=objectives,
        )

    def _text(self, element: etree._Element, name: str) -> str | None:
        child = self._child(element, name)
        return ((child.text or "").strip() or None) if child is not None else None

    @staticmethod
    def _mastery_score(au_id: str, value: str | None) -> float | None:
        if value is None or not value.strip():
            return None
        try:
            score = Decimal(value.strip())
        except InvalidOperation:
            score = Decimal("NaN")
        if not (score.is_finite() and 0 <= score <= 1):
            raise CourseStructureError(
                f'au "{au_id}" masteryScore "{value.strip()}": must be a decimal from 0 to 1'
            )
        return float(score)

    def _url(self, au_id: str, raw: str) -> str:
        url = raw.strip()
        where = f'au "{au_id}" <url>'
        if not url:
            raise CourseStructureError(f"{where}: the url is empty")
        if bad := _BAD_URL_CHARACTER.search(url):
            raise CourseStructureError(
                f"{where}: {url!r} is not a valid URL (character {bad.group()!r} at {bad.start()};"
                " cmi5 §13.1.4: the url conforms to RFC 1738)"
            )
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise CourseStructureError(f"{where}: {url!r} is not a valid URL: {exc}") from None
        used = sorted(
            {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)} & set(LAUNCH_PARAMETERS)
        )
        if used:
            raise CourseStructureError(
                f"{where}: the query string uses {', '.join(used)}, a launch parameter the LMS adds"
                " at launch (cmi5 §8.1: the names must not collide)"
            )
        if parts.scheme:
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                raise CourseStructureError(
                    f"{where}: {url!r} is neither an http(s) URL with a host nor a relative URL"
                    " (only http and https AUs can be launched)"
                )
            return url
        if parts.netloc or url.startswith("//"):
            raise CourseStructureError(
                f"{where}: {url!r} is a scheme-relative URL; use a fully qualified http(s) URL"
            )
        if self.files is None:
            raise CourseStructureError(
                f"{where}: {url!r} is a relative url; a relative url needs a zip package"
                " (cmi5 §14.2: a course structure without a zip has fully qualified URLs)"
            )
        path = unquote(parts.path)
        if path.startswith("/"):
            raise CourseStructureError(
                f'{where}: {url!r} must be relative to the package root, without a leading "/"'
            )
        normal = posixpath.normpath(path) if path else ""
        if normal == ".." or normal.startswith("../"):
            raise CourseStructureError(f"{where}: {url!r} points outside the zip package")
        if normal not in self.files:
            raise CourseStructureError(
                f"{where}: {url!r} names no file of the zip package (cmi5 §14.1: media in the package"
                " is referenced by relative URLs)"
            )
        return url
