"""The cmi5 course structure reader (``lrs.cmi5.structure``): course packages the LMS imports
(quartz §13, §14) and the ones it refuses, chosen after CATAPULT's LMS import tests
(``lts/procedure.md``: 201 IRIs, 202 relative url without a zip, 203 relative url naming no file,
204 launch parameter in the url, 205 duplicated ids, 206 invalid url, 207 invalid against the
XSD, 208/209 not a package, 210 no cmi5.xml).

The course structures are the hand-written files under ``tests/data/cmi5/``; zips are built here
from files. Every expected value is written by hand from those files.
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrs.cmi5.structure import (
    AU,
    Block,
    CourseStructure,
    CourseStructureError,
    Objective,
    Package,
    read_package,
    read_structure,
    title_text,
)

DATA = Path(__file__).parent / "data" / "cmi5"
INVALID = DATA / "invalid"
ZIP_COURSE = DATA / "zip_course"


def xml(name: str) -> bytes:
    return (DATA / name).read_bytes()


def invalid(name: str) -> bytes:
    return (INVALID / name).read_bytes()


def build_zip(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def course_files(root: Path = ZIP_COURSE) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


ZIPPED = build_zip(course_files())
"""The zip package of ``zip_course/``."""


def one_au(url: str) -> bytes:
    """A course with one AU whose url is ``url`` (XML-escaped by the caller)."""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<courseStructure xmlns="https://w3id.org/xapi/profiles/cmi5/v1/CourseStructure.xsd">
  <course id="https://example.com/courses/url">
    <title><langstring lang="en">T</langstring></title>
    <description><langstring lang="en">D</langstring></description>
  </course>
  <au id="https://example.com/courses/url/aus/1">
    <title><langstring lang="en">T</langstring></title>
    <description><langstring lang="en">D</langstring></description>
    <url>{url}</url>
  </au>
</courseStructure>
""".encode()


def refused(data: bytes, *, package: bool = False, **kwargs: int) -> str:
    with pytest.raises(CourseStructureError) as caught:
        read_package(data, **kwargs) if package else read_structure(data)
    return str(caught.value)


# --- valid course structures --------------------------------------------------------------------


def test_single_au_with_defaults() -> None:
    structure = read_structure(xml("single_au.xml"))
    assert structure == CourseStructure(
        id="http://course-repository.example.edu/identifiers/courses/02baafcf",
        title="Introduction to Geology",
        description="The basics of geology.",
        children=(
            AU(
                id="http://course-repository.example.edu/identifiers/courses/02baafcf/aus/4c07",
                title="Introduction to Geology (AU)",
                description="Plate tectonics, geological materials and the history of the Earth.",
                url="http://course-repository.example.edu/identifiers/courses/02baafcf/aus/4c07/launch.html",
                launch_method="AnyWindow",
                move_on="NotApplicable",
                mastery_score=None,
                launch_parameters=None,
                entitlement_key=None,
                activity_type=None,
                objectives=(),
            ),
        ),
        objectives=(),
    )
    assert structure.blocks() == []
    assert [(au.id, path) for au, path in structure.aus()] == [
        ("http://course-repository.example.edu/identifiers/courses/02baafcf/aus/4c07", ())
    ]


def test_two_blocks_nested() -> None:
    structure = read_structure(xml("two_blocks.xml"))
    a1 = AU(
        id="https://example.com/courses/demo/aus/a1",
        title="AU one",
        description="Completed and passed, mastery score 0.8.",
        url="https://content.example.com/a1/index.html?lang=en",
        move_on="CompletedAndPassed",
        mastery_score=0.8,
    )
    a2 = AU(
        id="https://example.com/courses/demo/aus/a2",
        title="AU two",
        description="Completed.",
        url="https://content.example.com/a2/index.html",
        move_on="Completed",
    )
    a3 = AU(
        id="https://example.com/courses/demo/aus/a3",
        title="AU three",
        description="Not applicable: satisfied without a launch.",
        url="https://content.example.com/a3/start.html",
        move_on="NotApplicable",
    )
    b2 = Block(
        id="https://example.com/courses/demo/blocks/b2",
        title="Block two",
        description="The inner block.",
        children=(a2,),
    )
    b1 = Block(
        id="https://example.com/courses/demo/blocks/b1",
        title="Block one",
        description="The outer block.",
        children=(a1, b2),
    )
    assert structure == CourseStructure(
        id="https://example.com/courses/demo",
        title="Demo course",
        description="A course with two blocks, one inside the other, and an AU of its own.",
        children=(b1, a3),
    )
    b1_id, b2_id = "https://example.com/courses/demo/blocks/b1", "https://example.com/courses/demo/blocks/b2"
    assert structure.aus() == [(a1, (b1_id,)), (a2, (b1_id, b2_id)), (a3, ())]
    assert structure.blocks() == [(b1, ()), (b2, (b1_id,))]


def test_every_move_on_launch_method_and_optional_value() -> None:
    structure = read_structure(xml("all_options.xml"))
    assert structure.title == "Options"  # en-GB: the preferred "en" prefixes it
    assert structure.description == "Alle Optionen."  # no English: the first
    assert structure.objectives == (
        Objective("https://example.com/objectives/basics", "Basics", "Basic knowledge."),
        Objective("https://example.com/objectives/advanced", "Advanced", "Advanced knowledge."),
    )
    [(block, ())] = structure.blocks()
    assert block.id == "https://example.com/courses/options/blocks/moveon"
    assert block.objectives == ("https://example.com/objectives/basics",)
    aus = {au.id.rsplit("/", 1)[1]: au for au, _ in structure.aus()}
    assert [(name, au.move_on, au.launch_method, au.mastery_score) for name, au in aus.items()] == [
        ("passed", "Passed", "OwnWindow", 0.75),
        ("completed", "Completed", "AnyWindow", None),
        ("completed-and-passed", "CompletedAndPassed", "AnyWindow", 1.0),
        ("completed-or-passed", "CompletedOrPassed", "AnyWindow", 0.0),
        ("not-applicable", "NotApplicable", "AnyWindow", None),
    ]
    passed = aus["passed"]
    assert passed.launch_parameters == "Start=1,QuizMode=1,FastForward=On"
    assert passed.entitlement_key == "xyz-123-9999"
    assert passed.activity_type == "http://adlnet.gov/expapi/activities/assessment"
    assert passed.objectives == (
        "https://example.com/objectives/basics",
        "https://example.com/objectives/advanced",
    )
    assert passed.url == "https://content.example.com/passed/index.html"
    assert aus["completed"].url == "http://content.example.com/completed/index.html"
    assert [au.objectives for name, au in aus.items() if name != "passed"] == [(), (), (), ()]


def test_values_are_trimmed() -> None:
    structure = read_structure(xml("whitespace.xml"))
    assert structure.id == "https://example.com/courses/padded"
    assert structure.title == "Padded course"  # a langstring without lang
    assert structure.description == "Course"  # lang " fr " and "en": English preferred
    assert structure.objectives == (
        Objective("https://example.com/objectives/padded", "Objective", "Padded objective"),
    )
    assert structure.children == (
        AU(
            id="https://example.com/courses/padded/aus/1",
            title="Padded AU",
            description="Described",
            url="https://content.example.com/padded/index.html?paramA=1&paramB=2",
            launch_method="OwnWindow",
            move_on="CompletedOrPassed",
            mastery_score=0.5,
            launch_parameters="sample string",
            entitlement_key=None,  # only whitespace
            activity_type="http://adlnet.gov/expapi/activities/media",
            objectives=("https://example.com/objectives/padded",),  # <objective/> without idref: ignored
        ),
    )


def test_older_namespace() -> None:
    structure = read_structure(xml("old_namespace.xml"))
    assert structure.id == "http://www.example.com/identifiers/course/old"
    assert structure.aus() == [
        (
            AU(
                id="http://www.example.com/identifiers/activity/old",
                title="Old AU",
                description="An AU.",
                url="http://www.example.com/courseX.html",
                move_on="Passed",
                mastery_score=0.85,
            ),
            ("http://www.example.com/identifiers/aublock/old",),
        )
    ]


def test_vendor_extensions_are_ignored() -> None:
    structure = read_structure(xml("extensions.xml"))
    assert structure == CourseStructure(
        id="https://example.com/courses/extended",
        title="Extended",
        description="A course with vendor extensions.",
        children=(
            AU(
                id="https://example.com/courses/extended/aus/1",
                title="Extended AU",
                description="An AU with extensions.",
                url="https://content.example.com/extended/index.html",
                move_on="Completed",
            ),
        ),
    )


def test_a_thousand_aus() -> None:
    """cmi5 §6.1: the LMS supports course structures with more than 1000 AUs (CATAPULT 101)."""
    aus = "".join(
        f'<au id="https://example.com/courses/big/aus/{n}"><title><langstring>AU {n}</langstring></title>'
        f"<description><langstring>D</langstring></description>"
        f"<url>https://content.example.com/{n}.html</url></au>"
        for n in range(1001)
    )
    data = (
        '<courseStructure xmlns="https://w3id.org/xapi/profiles/cmi5/v1/CourseStructure.xsd">'
        '<course id="https://example.com/courses/big"><title><langstring>T</langstring></title>'
        f"<description><langstring>D</langstring></description></course>{aus}</courseStructure>"
    ).encode()
    started = time.monotonic()
    structure = read_structure(data)
    assert time.monotonic() - started < 5
    assert len(structure.aus()) == 1001
    assert structure.aus()[1000][0].title == "AU 1000"


def test_bare_xml_package() -> None:
    package = read_package(xml("two_blocks.xml"))
    assert package == Package(read_structure(xml("two_blocks.xml")), {})
    assert package.structure.id == "https://example.com/courses/demo"


def test_bare_xml_package_in_utf16() -> None:
    text = xml("single_au.xml").decode().replace('encoding="utf-8"', 'encoding="utf-16"')
    package = read_package(text.encode("utf-16"))
    assert package.structure.title == "Introduction to Geology"


def test_zip_package_with_relative_url_and_assets() -> None:
    package = read_package(build_zip(course_files()))
    assert package.files == {
        "au1/index.html": (ZIP_COURSE / "au1" / "index.html").read_bytes(),
        "au1/media/logo.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>\n',
        "au1/style.css": b"body { font-family: sans-serif; }\n",
    }
    assert [(au.id, au.url, au.move_on) for au, _ in package.structure.aus()] == [
        ("https://example.com/courses/zipped/aus/1", "au1/index.html?paramA=1&paramB=2", "Completed"),
        (
            "https://example.com/courses/zipped/aus/2",
            "https://content.example.com/hosted/index.html",
            "NotApplicable",
        ),
    ]


def test_zip_package_stored_with_directory_entries_and_dot_paths() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("au1/", b"")
        archive.writestr("au1/media/", b"")
        for name, content in course_files().items():
            archive.writestr(name if name == "cmi5.xml" else f"./{name}", content)
    package = read_package(buffer.getvalue())
    assert sorted(package.files) == ["au1/index.html", "au1/media/logo.svg", "au1/style.css"]


def test_zip64_package() -> None:
    """cmi5 §14: Zip32 and Zip64 (CATAPULT 102)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for name, content in course_files().items():
            with archive.open(name, "w", force_zip64=True) as member:
                member.write(content)
    data = buffer.getvalue()
    name_length = int.from_bytes(data[26:28], "little")
    assert data[18:26] == b"\xff" * 8  # the first local header defers its sizes to ...
    assert data[30 + name_length : 32 + name_length] == b"\x01\x00"  # ... its Zip64 extra field
    package = read_package(data)
    assert package.structure.id == "https://example.com/courses/zipped"
    assert "au1/index.html" in package.files


def test_relative_url_forms_in_a_zip() -> None:
    files = {"content/a b/index.html": b"<html></html>", "root.html": b"<html></html>"}
    for url, expected in [
        ("content/a%20b/index.html", "content/a%20b/index.html"),
        ("./root.html#start", "./root.html#start"),
        ("content/../root.html?x=1", "content/../root.html?x=1"),
    ]:
        package = read_package(build_zip({"cmi5.xml": one_au(url), **files}))
        assert package.structure.aus()[0][0].url == expected


# --- title_text ------------------------------------------------------------------------------


def test_title_text() -> None:
    assert title_text({"de-DE": "Titel", "en-US": "Title"}) == "Title"
    assert title_text({"en-US": "US", "en": "plain"}) == "plain"
    assert title_text({"fr": "Titre", "de": "Titel"}) == "Titre"
    assert title_text({"fr": "Titre", "de": "Titel"}, "de-AT") == "Titel"
    assert title_text({"EN-gb": "British"}, "en") == "British"
    assert title_text({"english": "not a prefix match", "fr": "Titre"}) == "not a prefix match"
    assert title_text({}) == ""


# --- refused course structures -----------------------------------------------------------------


def test_not_well_formed() -> None:
    message = refused(invalid("not_well_formed.xml"))
    assert message.startswith("cmi5.xml is not well-formed XML (line 9): ")
    assert "au line 6" in message


@pytest.mark.parametrize("name", ["doctype_entity.xml", "billion_laughs.xml"])
def test_doctype_and_entities_are_refused(name: str) -> None:
    started = time.monotonic()
    message = refused(invalid(name))
    assert time.monotonic() - started < 2
    assert message == "cmi5.xml: a DOCTYPE (DTD, entities) is not allowed in a course structure"


def test_doctype_in_utf16_is_refused() -> None:
    text = invalid("doctype_entity.xml").decode().replace('encoding="utf-8"', 'encoding="utf-16"')
    assert "DOCTYPE" in refused(text.encode("utf-16"))


def test_root_element_and_namespace() -> None:
    assert refused(invalid("no_namespace.xml")).startswith(
        "line 2, <courseStructure> without a namespace: the root element must be <courseStructure>"
    )
    assert refused(invalid("wrong_root.xml")).startswith(
        'line 2, <course> in namespace "https://w3id.org/xapi/profiles/cmi5/v1/CourseStructure.xsd": the root'
    )


def test_schema_element_order() -> None:
    """CATAPULT 207-1: the url before the title."""
    assert refused(invalid("element_order.xml")) == (
        'line 8, <url> (in <au> "https://example.com/courses/order/aus/1"): This element is not expected.'
        " Expected is ( title )"
    )


def test_schema_move_on_value() -> None:
    message = refused(invalid("bad_move_on.xml"))
    assert message.startswith(
        "line 6, <au> \"https://example.com/courses/move-on/aus/1\": attribute 'moveOn': "
    )
    assert "'Finished'" in message


def test_schema_mastery_score_range() -> None:
    message = refused(invalid("mastery_score_too_high.xml"))
    assert message.startswith(
        "line 6, <au> \"https://example.com/courses/mastery/aus/1\": attribute 'masteryScore':"
    )
    assert "'1.5'" in message


def test_course_without_au() -> None:
    assert refused(invalid("no_au.xml")) == (
        "line 2, <courseStructure>: Missing child element(s). Expected is one of ( objectives, au, block )"
    )
    assert refused(invalid("empty_block.xml")).startswith(
        'line 6, <block> "https://example.com/courses/empty-block/blocks/1": Missing child element(s).'
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "iri_course_id.xml",
            'line 4, <course> id "w3id.org/xapi/cmi5/catapult/lts/course/201-1-iris-course-id": not an absolute IRI',
        ),
        ("iri_block_id.xml", 'line 7, <block> id "example.com/courses/iri/blocks/1": not an absolute IRI'),
        ("iri_au_id.xml", 'line 7, <au> id "aus/1": not an absolute IRI'),
        ("iri_objective_id.xml", 'line 8, <objective> id "objectives/basics": not an absolute IRI'),
    ],
)
def test_ids_are_absolute_iris(name: str, expected: str) -> None:
    """CATAPULT 201-1 … 201-4."""
    assert refused(invalid(name)).startswith(expected)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "duplicate_block.xml",
            'line 14, <block> id "https://example.com/courses/dup/blocks/1": already the id of the <block> on line 7',
        ),
        (
            "duplicate_au.xml",
            'line 13, <au> id "https://example.com/courses/dup/aus/1": already the id of the <au> on line 7',
        ),
        (
            "duplicate_objective.xml",
            'line 11, <objective> id "https://example.com/objectives/1": already the id of the <objective> on line 8',
        ),
        (
            "au_id_is_course_id.xml",
            'line 7, <au> id "https://example.com/courses/same": already the id of the <course> on line 4',
        ),
    ],
)
def test_ids_are_unique(name: str, expected: str) -> None:
    """CATAPULT 205-1 … 205-3, and across kinds of element."""
    assert refused(invalid(name)).startswith(expected)


def test_objective_reference_must_resolve() -> None:
    assert refused(invalid("unknown_objective.xml")) == (
        'au "https://example.com/courses/objectives/aus/1" <objectives>: objective'
        ' "https://example.com/objectives/unknown" is not defined in the course\'s <objectives>'
    )


def test_activity_type_must_be_an_iri() -> None:
    data = one_au("https://content.example.com/1.html").replace(
        b'<au id="https://example.com/courses/url/aus/1"',
        b'<au id="https://example.com/courses/url/aus/1" activityType="media"',
    )
    assert (
        refused(data)
        == 'au "https://example.com/courses/url/aus/1" activityType "media": not an absolute IRI'
    )


# --- AU urls --------------------------------------------------------------------------------------

AU_URL = 'au "https://example.com/courses/url/aus/1" <url>: '


def test_relative_url_needs_a_zip_package() -> None:
    """CATAPULT 202-1."""
    message = refused(invalid("relative_url_no_zip.xml"))
    assert message.startswith('au "https://example.com/courses/relative/aus/1" <url>: ')
    assert "relative url needs a zip package" in message


@pytest.mark.parametrize(
    "url", ["path/1/index.html", "index.html?abc=def", "path/1/index.html?abc=def", "/index.html"]
)
def test_relative_url_forms_without_a_zip(url: str) -> None:
    """CATAPULT 202-2 … 202-5."""
    message = refused(one_au(url))
    assert message.startswith(AU_URL)
    assert "relative url needs a zip package" in message


def test_invalid_url() -> None:
    """CATAPULT 206-1."""
    assert refused(invalid("url_with_space.xml")).startswith(
        "au \"https://example.com/courses/space/aus/1\" <url>: 'http://example.com index.html' is not a valid URL"
    )


def test_url_query_must_not_use_launch_parameters() -> None:
    """CATAPULT 204 (cmi5 §8.1)."""
    assert refused(invalid("url_launch_parameter.xml")) == (
        'au "https://example.com/courses/conflict/aus/1" <url>: the query string uses endpoint, a launch'
        " parameter the LMS adds at launch (cmi5 §8.1: the names must not collide)"
    )


@pytest.mark.parametrize("name", ["endpoint", "fetch", "actor", "registration", "activityId"])
def test_each_launch_parameter_is_refused_in_the_url(name: str) -> None:
    message = refused(one_au(f"https://content.example.com/index.html?{name}=x"))
    assert message.startswith(AU_URL + f"the query string uses {name}, ")


def test_launch_parameter_in_a_zip_relative_url() -> None:
    data = build_zip({"cmi5.xml": one_au("index.html?a=1&amp;registration=r"), "index.html": b""})
    assert refused(data, package=True).startswith(AU_URL + "the query string uses registration, ")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("", "the url is empty"),
        ("   ", "the url is empty"),
        (
            "javascript:alert(1)",
            "'javascript:alert(1)' is neither an http(s) URL with a host nor a relative URL",
        ),
        ("ftp://example.com/a.html", "'ftp://example.com/a.html' is neither an http(s) URL"),
        ("https:///index.html", "'https:///index.html' is neither an http(s) URL with a host"),
        ("//cdn.example.com/a.html", "'//cdn.example.com/a.html' is a scheme-relative URL"),
        ("https://[example.com/a.html", "'https://[example.com/a.html' is not a valid URL"),
        ("https://example.com/a\tb.html", "'https://example.com/a\\tb.html' is not a valid URL"),
        ("https://example.com/&lt;script&gt;", "'https://example.com/<script>' is not a valid URL"),
    ],
)
def test_bad_urls(url: str, expected: str) -> None:
    assert refused(one_au(url)).startswith(AU_URL + expected)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("missing.html", "'missing.html' names no file of the zip package"),
        ("au1/", "'au1/' names no file of the zip package"),
        ("?only=query", "'?only=query' names no file of the zip package"),
        ("/au1/index.html", "'/au1/index.html' must be relative to the package root"),
        ("../outside.html", "'../outside.html' points outside the zip package"),
        ("au1/../../outside.html", "'au1/../../outside.html' points outside the zip package"),
    ],
)
def test_relative_url_must_name_a_file_of_the_zip(url: str, expected: str) -> None:
    """CATAPULT 203-1."""
    data = build_zip({"cmi5.xml": one_au(url), "au1/index.html": b"<html></html>"})
    assert refused(data, package=True).startswith(AU_URL + expected)


# --- refused packages -------------------------------------------------------------------------


def test_not_a_zip_and_not_xml() -> None:
    """CATAPULT 208-1 (markdown) and 209-1 (text named .zip)."""
    expected = "the package is neither a zip file nor a cmi5.xml course structure (XML)"
    assert refused(b"# LMS Test Package\n\nNot a course.\n", package=True) == expected
    assert refused(b"this is not a zip file", package=True) == expected
    assert refused(b"", package=True) == expected


def test_broken_zip() -> None:
    message = refused(b"PK\x03\x04 but nothing a zip reader can use", package=True)
    assert message.startswith("the package is not a readable zip file: ")


def test_zip_without_cmi5_xml() -> None:
    """CATAPULT 210-1."""
    assert (
        refused(build_zip({"index.html": b""}), package=True) == "the zip package has no cmi5.xml at its root"
    )


def test_cmi5_xml_must_be_at_the_root() -> None:
    data = build_zip({"course/cmi5.xml": xml("two_blocks.xml"), "course/index.html": b""})
    assert (
        refused(data, package=True) == "the zip package has no cmi5.xml at its root (found course/cmi5.xml)"
    )


def test_invalid_structure_inside_a_zip() -> None:
    data = build_zip({"cmi5.xml": invalid("duplicate_au.xml")})
    assert refused(data, package=True).startswith('line 13, <au> id "https://example.com/courses/dup/aus/1"')


@pytest.mark.parametrize(
    "name", ["/etc/passwd", "../evil.html", "au1/../../evil.html", "a\\..\\evil.html", "C:/evil"]
)
def test_unsafe_member_names(name: str) -> None:
    data = build_zip({"cmi5.xml": xml("two_blocks.xml"), name: b"x"})
    assert (
        refused(data, package=True) == f'zip member "{name}": absolute names and names with ".." are refused'
    )


def test_encrypted_member() -> None:
    data = bytearray(build_zip({"cmi5.xml": xml("two_blocks.xml"), "secret.html": b"ciphertext"}))
    central = bytes(data).rindex(b"PK\x01\x02")  # secret.html's central directory entry
    local = bytes(data).index(b"PK\x03\x04", 4)  # its local header
    data[central + 8] |= 0x1  # the encryption flag: a reader would need a password
    data[local + 6] |= 0x1
    assert zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("secret.html").flag_bits & 0x1
    assert refused(bytes(data), package=True) == (
        'zip member "secret.html": encrypted members are not supported'
    )


def test_zip_bomb() -> None:
    data = build_zip({"cmi5.xml": xml("two_blocks.xml"), "bomb.bin": bytes(4 * 2**20)})
    assert len(data) < 64 * 1024
    assert read_package(data).files["bomb.bin"] == bytes(4 * 2**20)
    message = refused(data, package=True, max_bytes=2**20)
    assert message == 'the zip package uncompresses to more than 1048576 bytes (at "bomb.bin")'


def test_zip_member_lying_about_its_size() -> None:
    """A member whose header claims a small size: the bytes read are counted too."""
    data = bytearray(build_zip({"cmi5.xml": xml("two_blocks.xml"), "bomb.bin": bytes(2 * 2**20)}))
    central = bytes(data).rindex(b"PK\x01\x02")  # bomb.bin's central directory entry
    assert data[central + 46 : central + 46 + len("bomb.bin")] == b"bomb.bin"
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")  # its uncompressed size: 10 bytes
    assert zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("bomb.bin").file_size == 10
    message = refused(bytes(data), package=True, max_bytes=2**20)
    assert message.startswith('zip member "bomb.bin": cannot be read: ') or message.startswith(
        "the zip package uncompresses to more than 1048576 bytes"
    )


def test_package_larger_than_max_bytes() -> None:
    assert (
        refused(xml("two_blocks.xml"), package=True, max_bytes=100) == "the package is larger than 100 bytes"
    )


def test_too_many_members() -> None:
    members = {"cmi5.xml": xml("two_blocks.xml")} | {f"f/{n}": b"" for n in range(10_000)}
    data = build_zip(members, compression=zipfile.ZIP_STORED)
    assert refused(data, package=True) == "the zip package has 10001 members, more than 10000"


def test_duplicate_member_names() -> None:
    buffer = io.BytesIO()
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cmi5.xml", xml("two_blocks.xml"))
        archive.writestr("cmi5.xml", xml("single_au.xml"))
    assert refused(buffer.getvalue(), package=True) == 'zip member "cmi5.xml": the name is used twice'


# --- hostile bytes ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_packages_fail_only_with_course_structure_errors(data: st.DataObject) -> None:
    """Bytes flipped, cut or inserted anywhere in a zip or a bare cmi5.xml: the reader accepts the
    package or refuses it with a CourseStructureError, never another exception."""
    original = data.draw(st.sampled_from([ZIPPED, xml("all_options.xml")]))
    damaged = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(damaged) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            damaged[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del damaged[at : at + data.draw(st.integers(1, 64))]
        else:
            damaged[at:at] = data.draw(st.binary(min_size=1, max_size=16))
        if not damaged:
            damaged = bytearray(b"<")
    try:
        package = read_package(bytes(damaged))
    except CourseStructureError as exc:
        assert str(exc)
    else:
        assert package.structure.aus()
