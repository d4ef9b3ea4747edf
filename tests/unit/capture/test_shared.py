"""SharedData: a file identical to one written before in the artifact is stored once."""

from __future__ import annotations

from pathlib import Path

from padlc.capture.shared import SharedData


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def test_a_new_file_stays_where_it_was_written(tmp_path: Path) -> None:
    _write(tmp_path / "data" / "a.json", b"[1, 2]")
    assert SharedData().share(tmp_path, "data/a.json") == "data/a.json"
    assert (tmp_path / "data" / "a.json").read_bytes() == b"[1, 2]"


def test_an_identical_file_is_removed_and_the_earlier_one_referenced(tmp_path: Path) -> None:
    shared = SharedData()
    _write(tmp_path / "data" / "a.json", b"[1, 2]")
    shared.share(tmp_path, "data/a.json")
    module_dir = tmp_path / "forward"
    _write(module_dir / "data" / "eager" / "a.json", b"[1, 2]")
    assert shared.share(module_dir, "data/eager/a.json") == "../data/a.json"
    assert not (module_dir / "data").exists()  # emptied folders go too, up to the module's


def test_a_file_with_other_content_is_kept(tmp_path: Path) -> None:
    shared = SharedData()
    _write(tmp_path / "a.json", b"[1, 2]")
    shared.share(tmp_path, "a.json")
    _write(tmp_path / "b.json", b"[1, 3]")
    assert shared.share(tmp_path, "b.json") == "b.json"
    assert (tmp_path / "b.json").exists()


def test_a_kept_file_is_shared_but_never_replaced(tmp_path: Path) -> None:
    shared = SharedData()
    _write(tmp_path / "data" / "w.bin", b"weights")
    shared.share(tmp_path, "data/w.bin")
    _write(tmp_path / "weights.bin", b"weights")
    shared.keep(tmp_path, "weights.bin")  # read from a fixed place: it stays
    assert (tmp_path / "weights.bin").exists()
    _write(tmp_path / "other" / "w.bin", b"weights")
    assert shared.share(tmp_path, "other/w.bin") == "weights.bin"
