"""Every bad input of the issue: the right status, a sentence to act on, nothing written, inputs untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import grpc
import openpyxl
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugins.data_processors.v1 import data_processors_pb2 as pb
from apt_model.gen.apt.plugins.data_processors.v1 import data_processors_pb2_grpc
from apt_model.runtime.testing import serve_plugin, wait_job
from apt_model.store import Store

PLUGIN_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


@pytest.fixture
def served(tmp_path, root):
    home = tmp_path / "home"
    with serve_plugin(PLUGIN_DIR, home, data_roots=(str(root),), plugin_env={"APT_DATA_MAX_FILE_MB": "1"}) as (ch, _):
        yield data_processors_pb2_grpc.DataProcessorsStub(ch), ch, Store(home)


def fingerprint(path: Path) -> list[tuple[str, str]]:
    """sha256 of the file, or of every file under the folder."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [(p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in files]


def failure(served, path: Path, **fields) -> tuple[str, str]:
    """(status code name, message) of a process run on ``path`` that must fail, with nothing stored
    and the input file unchanged."""
    stub, channel, store = served
    before = fingerprint(path)
    try:
        job = wait_job(channel, stub.StartProcess(pb.ProcessRequest(paths=[str(path)], name="out", **fields)).id)
    except grpc.RpcError as err:
        code, message = err.code().name, err.details()
    else:
        assert job.state == job_pb2.JOB_STATE_FAILED
        code, message = job.error.code, job.error.message
    assert not store.exists("datasets", "out") and not store.exists("datasets", "out-eval")
    assert fingerprint(path) == before
    return code, message


def test_undecodable_bytes_name_file_offset_line_and_candidates(served, root):
    path = root / "broken.txt"
    good = ("第一行中文文本，用于检测编码。\n" * 3000).encode("gb18030")  # past the detection sample
    path.write_bytes(good + b"\n\x81\x20bad tail\n")
    code, message = failure(served, path)
    assert code == "INVALID_ARGUMENT"
    assert "broken.txt" in message and f"byte offset {len(good) + 1}" in message and "line 3002" in message
    assert "candidate encodings" in message


def test_missing_text_column_lists_the_columns(served, root):
    path = root / "rows.csv"
    path.write_text("title,body\nA,some body text here\n", encoding="utf-8")
    code, message = failure(served, path)
    assert code == "INVALID_ARGUMENT" and "'text'" in message and "title, body" in message


def test_ragged_csv_row_is_named(served, root):
    path = root / "ragged.csv"
    path.write_text("id,text\n1,fine text\n2,also fine\n3,too,many\n", encoding="utf-8")
    code, message = failure(served, path)
    assert code == "INVALID_ARGUMENT" and "line 4" in message and "data row 3" in message


@pytest.mark.parametrize("name", ["old.xls", "locked.xlsx"])
def test_xls_and_encrypted_xlsx_ask_for_save_as_xlsx(served, root, name):
    path = root / name
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))  # an OLE compound file header
    code, message = failure(served, path)
    assert code == "INVALID_ARGUMENT" and "save as .xlsx" in message


def test_formulas_without_cached_values_name_the_cells(served, root):
    path = root / "formulas.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["text"])
    sheet.append(["A real sentence that is long enough to keep around."])
    sheet.append(['=CONCAT("a", "b")'])
    sheet.append(['=UPPER(A2)'])
    book.save(path)  # openpyxl computes nothing: the formulas have no cached values
    code, message = failure(served, path)
    assert code == "FAILED_PRECONDITION" and "A3, A4" in message and "save it" in message


def test_oversized_file_is_resource_exhausted(served, root):
    path = root / "big.jsonl"
    path.write_bytes(b'{"text": "' + b"a" * (1 << 20) + b'"}\n')
    code, message = failure(served, path)
    assert code == "RESOURCE_EXHAUSTED" and "APT_DATA_MAX_FILE_MB" in message


def test_everything_filtered_out_writes_nothing_and_counts_per_filter(served, root):
    path = root / "junk.jsonl"
    path.write_text('{"text": "ok"}\n{"text": "#### #### ####"}\n{"text": "   "}\n', encoding="utf-8")
    code, message = failure(served, path)
    assert code == "FAILED_PRECONDITION"
    assert "too_few_words: 2" in message and "empty_after_cleaning: 1" in message


def test_a_path_outside_the_data_roots_is_refused(served, tmp_path):
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("A sentence with enough words to pass every filter here.", encoding="utf-8")
    code, message = failure(served, outside)
    assert code == "PERMISSION_DENIED" and "APT_DATA_ROOTS" in message


def test_an_existing_dataset_is_not_replaced_without_overwrite(served, root):
    stub, channel, store = served
    path = root / "a.txt"
    path.write_text("A sentence with enough words to pass every filter here.", encoding="utf-8")
    with store.create("datasets", "out", operation="test") as folder:
        (folder / "keep.txt").write_text("old", encoding="utf-8")
    with pytest.raises(grpc.RpcError) as err:
        stub.StartProcess(pb.ProcessRequest(paths=[str(path)], name="out"))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert (store.dataset("out").path / "keep.txt").read_text() == "old"


def test_a_folder_is_read_whole_but_a_link_out_of_it_is_refused(served, root, tmp_path):
    stub, channel, store = served
    folder = root / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("A sentence with enough words to pass every filter here.", encoding="utf-8")
    (folder / "b.jsonl").write_text('{"text": "Another sentence, long enough to pass every filter too."}\n',
                                    encoding="utf-8")
    job = wait_job(channel, stub.StartProcess(pb.ProcessRequest(paths=[str(folder)], name="folder")).id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    assert len((store.dataset("folder").path / "data.jsonl").read_text().splitlines()) == 2
    secret = tmp_path / "secret.txt"
    secret.write_text("Outside the data roots, and it must stay unread by the service.", encoding="utf-8")
    (folder / "link.txt").symlink_to(secret)
    code, message = failure(served, folder)
    assert code == "PERMISSION_DENIED" and "link" in message


def test_a_dataset_record_listing_text_files_outside_it_is_data_loss(served, root):
    stub, channel, store = served
    secret = root.parent / "secret.jsonl"
    secret.write_text('{"text": "not for this caller"}\n', encoding="utf-8")
    with store.create("datasets", "forged", operation="test", extra={"text_files": ["../../../secret.jsonl"]}) as f:
        (f / "data.jsonl").write_text('{"text": "fine"}\n', encoding="utf-8")
    with pytest.raises(grpc.RpcError) as err:
        stub.StartProcess(pb.ProcessRequest(dataset="forged", name="out"))
    assert err.value.code() == grpc.StatusCode.DATA_LOSS
