"""A dataset manifest's rows (apt_multimodal.manifest), rule by rule and without opening a media
file: where the manifest is found, each column rule and its whole sentence, paths that leave the
data folder (`..`, absolute, a link out), the placeholder count, and how many refusals one
message quotes. What `make mutate`'s multimodal-manifest target runs (under a second)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apt_model import errors
from apt_multimodal import manifest as mf

BOTH = ("image", "audio")


def refused(call, *args) -> str:
    with pytest.raises(errors.InvalidArgument) as info:
        call(*args)
    return info.value.message


@pytest.fixture
def folder(tmp_path) -> Path:
    data = tmp_path / "data"
    (data / "img").mkdir(parents=True)
    for name in ("a.png", "b.png", "c.wav"):
        (data / "img" / name).write_bytes(b"x")
    (tmp_path / "secret.png").write_bytes(b"s")
    return data.resolve()


def test_the_manifest_is_the_file_given_or_the_folders_metadata_file(tmp_path):
    (tmp_path / "m.jsonl").write_text("{}")
    assert mf.manifest_file(tmp_path / "m.jsonl") == tmp_path / "m.jsonl"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "metadata.csv").write_text("text\n")
    assert mf.manifest_file(tmp_path / "d") == tmp_path / "d" / "metadata.csv"
    (tmp_path / "d" / "metadata.jsonl").write_text("{}")
    assert mf.manifest_file(tmp_path / "d") == tmp_path / "d" / "metadata.jsonl"   # JSON lines first
    (tmp_path / "e" / "metadata.jsonl").mkdir(parents=True)   # a folder by that name is not the file
    assert refused(mf.manifest_file, tmp_path / "e") == (
        f"The folder {tmp_path / 'e'} holds neither metadata.jsonl nor metadata.csv; add one with a `text` column and "
        "`images`/`audios`/`videos` columns of paths.")
    assert refused(mf.manifest_file, tmp_path / "nope") == f"The manifest {tmp_path / 'nope'} does not exist."


def test_a_row_becomes_its_text_and_resolved_files(folder):
    row = mf.check_row(3, {"text": "<image> and <audio> and <image>", "images": ["img/a.png", "img/b.png"],
                           "audios": "img/c.wav"}, folder, BOTH)
    assert (row.number, row.text) == (3, "<image> and <audio> and <image>")
    assert row.media == {"image": [folder / "img/a.png", folder / "img/b.png"], "audio": [folder / "img/c.wav"]}
    assert mf.check_row(4, {"text": "just words", "images": ""}, folder, BOTH).media == {}
    assert mf.check_row(5, {"text": "t"}, folder, ()).media == {}


def test_unknown_columns_are_listed_beside_the_accepted_ones(folder):
    assert refused(mf.check_row, 7, {"text": "t", "videos": [], "label": 1}, folder, BOTH) == (
        "row 7: unknown column(s) label, videos; accepted: audios, images, text")
    assert refused(mf.check_row, 8, {"text": "t", "images": []}, folder, ("audio",)) == (
        "row 8: unknown column(s) images; accepted: audios, text")


@pytest.mark.parametrize("text", [None, "", "   ", 5])
def test_a_row_without_text_is_refused(folder, text):
    assert refused(mf.check_row, 2, {"text": text}, folder, BOTH) == "row 2: `text` is missing or empty"


def test_placeholders_match_the_files_one_for_one(folder):
    assert refused(mf.check_row, 4, {"text": "<image>", "images": ["img/a.png", "img/b.png"]}, folder, BOTH) == (
        "row 4: the text has 1 <image> placeholder(s) and 2 images; give one placeholder per file")
    assert refused(mf.check_row, 4, {"text": "<audio>"}, folder, BOTH) == (
        "row 4: the text has 1 <audio> placeholder(s) and 0 audios; give one placeholder per file")


@pytest.mark.parametrize("value, paths", [(None, []), ("", []), ("a.png", ["a.png"]), (["a", "b"], ["a", "b"]),
                                          (' ["a", "b"]', ["a", "b"]), ("[]", [])])
def test_a_cell_is_a_path_or_a_list_of_paths(value, paths):
    assert mf.as_list(value, 1, "images") == paths


@pytest.mark.parametrize("value", [5, ["a", ""], ["a", 3], {"a": 1}, "[1]", "[not json", '["a",'])
def test_anything_else_in_a_path_cell_is_refused(value):   # a broken JSON list too, not an internal error
    assert refused(mf.as_list, value, 6, "audios") == "row 6: `audios` must be a path or a list of paths"


@pytest.mark.parametrize("raw", ["../secret.png", "img/../../secret.png", "/etc/passwd", "img/out.png"])
def test_a_path_that_leaves_the_data_folder_is_refused(folder, raw):
    (folder / "img" / "out.png").symlink_to(folder.parent / "secret.png")
    assert refused(mf.inside, folder, raw, 9) == (
        f"row 9: the path {raw!r} is outside the data folder {folder}; put the file inside it and name it "
        "relative to the manifest")


def test_paths_inside_the_folder_resolve_whatever_their_spelling(folder):
    (folder / "img" / "alias.png").symlink_to(folder / "img" / "a.png")
    assert mf.inside(folder, "img/./sub/../a.png", 1) == folder / "img/a.png"
    assert mf.inside(folder, str(folder / "img" / "b.png"), 1) == folder / "img/b.png"
    assert mf.inside(folder, "img/alias.png", 1) == folder / "img/a.png"
    assert mf.inside(folder, ".", 1) == folder


def test_every_bad_row_is_named_up_to_five(tmp_path, folder):
    manifest = folder / "rows.jsonl"
    rows = [{"text": "ok"}] + [{"text": ""} for _ in range(7)]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    message = refused(mf.read_rows, manifest, BOTH)
    assert message == (f"7 row(s) of {manifest} are refused, nothing was stored: "
                       + " | ".join(f"row {n}: `text` is missing or empty" for n in range(2, 7)) + " (and 2 more)")
    manifest.write_text(json.dumps({"text": ""}) + "\n" + json.dumps({"text": "ok"}) + "\n")
    assert refused(mf.read_rows, manifest, BOTH) == (
        f"1 row(s) of {manifest} are refused, nothing was stored: row 1: `text` is missing or empty")
    manifest.write_text("\n".join(json.dumps({"text": ""}) for _ in range(5)))
    assert not refused(mf.read_rows, manifest, BOTH).endswith("more)")


def test_rows_are_read_from_json_lines_and_csv(folder):
    (folder / "m.jsonl").write_text('{"text": "<image> one", "images": "img/a.png"}\n\n{"text": "two"}\n')
    rows = mf.read_rows(folder / "m.jsonl", BOTH)
    assert [(r.number, r.text, r.media) for r in rows] == [(1, "<image> one", {"image": [folder / "img/a.png"]}),
                                                           (3, "two", {})]
    (folder / "m.json").write_text('{"text": "x"}\n')
    assert [r.text for r in mf.read_rows(folder / "m.json", BOTH)] == ["x"]
    (folder / "metadata.csv").write_text('text,images,audios\n"<image><image> 图",'
                                         '"[""img/a.png"", ""img/b.png""]",\nplain,,\n', encoding="utf-8")
    rows = mf.read_rows(folder, BOTH)
    assert [(r.number, r.text, r.media) for r in rows] == [
        (2, "<image><image> 图", {"image": [folder / "img/a.png", folder / "img/b.png"]}), (3, "plain", {})]


def test_an_empty_manifest_is_refused(folder):
    (folder / "m.jsonl").write_text("\n")
    assert refused(mf.read_rows, folder / "m.jsonl", BOTH) == f"The manifest {folder / 'm.jsonl'} has no rows."
    (folder / "metadata.csv").write_text("text,images\n")
    assert refused(mf.read_rows, folder, BOTH) == f"The manifest {folder / 'metadata.csv'} has no rows."


def test_a_csv_row_without_a_text_cell_is_named(folder):
    (folder / "metadata.csv").write_text("text,images\n,img/a.png\n")
    assert refused(mf.read_rows, folder, BOTH) == (
        f"1 row(s) of {folder / 'metadata.csv'} are refused, nothing was stored: row 2: `text` is missing or empty")


def test_a_rows_refusal_names_its_row_and_column(folder):
    assert refused(mf.check_row, 4, {"text": "<image>", "images": 5}, folder, BOTH) == (
        "row 4: `images` must be a path or a list of paths")
    assert refused(mf.check_row, 4, {"text": "<image>", "images": "../x.png"}, folder, BOTH) == (
        f"row 4: the path '../x.png' is outside the data folder {folder}; put the file inside it and name it "
        "relative to the manifest")


def test_a_line_that_is_not_json_names_the_manifest(folder):
    (folder / "m.jsonl").write_text('{"text": "ok"}\nnot json\n')
    assert refused(mf.read_rows, folder / "m.jsonl", BOTH) == (
        f"{folder / 'm.jsonl'} line 2 is not valid JSON (Expecting value).")


def test_csv_cells_keep_their_line_breaks_and_empty_extra_columns_are_ignored(folder):
    (folder / "metadata.csv").write_bytes(b'text,notes\r\n"line one\r\nline two",\r\nplain,\r\n')
    rows = mf.read_rows(folder, BOTH)
    assert [r.text for r in rows] == ["line one\r\nline two", "plain"]
    (folder / "metadata.csv").write_text("text,notes\nplain,something\n")
    assert refused(mf.read_rows, folder, BOTH).endswith("row 2: unknown column(s) notes; accepted: audios, images, text")
