"""Every code block of the documentation says what it is (tests/docs_blocks.py); the e2e test
runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs_blocks import DOCUMENTS, REPO, blocks, problems, session_script


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


_SERVED = """\
```bash server port=8080
padlc serve a.padl --port 8080
```

```bash
curl -sf localhost:8080/x
```

```bash server port=8081
padlc serve b.padl --port 8081
```

```bash
curl -sf localhost:8081/y localhost:8080/z
```
"""


def test_each_server_of_a_document_gets_a_port_of_its_own(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(_SERVED)
    ports = iter([5000, 5000, 5001])  # a port handed out twice is not used twice
    script = session_script(page, lambda: next(ports))
    assert "padlc serve a.padl --port 5000" in script
    assert "curl -sf localhost:5000/x" in script
    assert "padlc serve b.padl --port 5001" in script
    assert "curl -sf localhost:5001/y localhost:5000/z" in script


def test_a_gpu_block_runs_only_where_there_is_a_gpu(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```bash gpu\nnvidia-smi\n```\n")
    assert "nvidia-smi" not in session_script(page, lambda: 0, gpu=False)
    assert "nvidia-smi" in session_script(page, lambda: 0, gpu=True)
