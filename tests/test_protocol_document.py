"""The protocol document and its vectors: in the repository, consistent, and the original's copy.

The signers themselves are checked against the vectors in test_protocol.py,
test_device_signer.py and test_client_protocol.py.
"""

from __future__ import annotations

from pathlib import Path
import re

import pytest

from .vectors import (
    ORIGINAL_VECTORS_PATH,
    REQUEST_VECTORS,
    RESPONSE_VECTORS,
    VECTORS,
    VECTORS_PATH,
)

DOCUMENT = Path(__file__).parents[1] / "docs" / "protocol.md"


def test_vectors_cover_every_kind() -> None:
    assert len(REQUEST_VECTORS) >= 5
    assert len(RESPONSE_VECTORS) >= 2
    assert len(REQUEST_VECTORS) + len(RESPONSE_VECTORS) == len(VECTORS)
    assert {v["method"] for v in REQUEST_VECTORS} >= {"GET", "POST"}
    assert any(v["body"] == "" for v in RESPONSE_VECTORS)


def test_document_quotes_the_vectors() -> None:
    """The worked examples are the vectors' own signatures, so the two cannot drift apart."""
    text = DOCUMENT.read_text(encoding="utf-8")
    assert f"[`{VECTORS_PATH.name}`]({VECTORS_PATH.name})" in text
    post = next(v for v in REQUEST_VECTORS if v["method"] == "POST")
    for vector in (REQUEST_VECTORS[0], post, *RESPONSE_VECTORS):
        assert vector["signature"] in text
    assert REQUEST_VECTORS[0]["message"].replace("\n", "\\n") in text


def _anchors(document: Path) -> set[str]:
    """Return the anchors of a Markdown file's headings, as GitHub makes them."""
    headings = [
        line.lstrip("#").strip()
        for line in document.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    ]
    return {
        re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")
        for heading in headings
    }


def test_document_has_its_sections() -> None:
    for anchor in (
        "extensions",
        "compatibility-with-the-original-providore-server",
        "test-vectors",
    ):
        assert anchor in _anchors(DOCUMENT)


@pytest.mark.parametrize("name", ["protocol.md", "client.md"])
def test_links_between_documents_resolve(name: str) -> None:
    source = DOCUMENT.parent / name
    links = re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)", source.read_text("utf-8"))
    local = [(file, anchor) for file, anchor in links if "://" not in file]
    assert local
    for file, anchor in local:
        target = source.parent / file if file else source
        assert target.is_file(), file
        if anchor:
            assert anchor in _anchors(target), f"{file}#{anchor}"


@pytest.mark.skipif(
    not ORIGINAL_VECTORS_PATH.is_file(),
    reason=f"the original vectors are not beside the repository ({ORIGINAL_VECTORS_PATH})",
)
def test_vectors_are_the_originals_byte_for_byte() -> None:
    assert VECTORS_PATH.read_bytes() == ORIGINAL_VECTORS_PATH.read_bytes()
