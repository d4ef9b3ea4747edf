"""Every code block of the documentation says what it is (tests/docs_blocks.py); the e2e test
runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs_blocks import DOCUMENTS, REPO, blocks, problems


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: str(d.relative_to(REPO)))
def test_every_code_block_is_tagged_with_what_it_is(document: Path) -> None:
    found = [problem for block in blocks(document) for problem in problems(block)]
    assert not found, "\n".join(found)


def test_every_doc_page_is_a_document_of_the_suite() -> None:
    assert set(REPO.glob("docs/*.md")) <= set(DOCUMENTS)
    assert REPO / "README.md" in DOCUMENTS


def test_fences_indented_in_a_list_item_are_blocks(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("* item:\n\n  ```bash dry-run\n  make test\n  ```\n")
    (block,) = blocks(page)
    assert (block.language, block.options, block.code) == ("bash", {"dry-run": ""}, "make test\n")
