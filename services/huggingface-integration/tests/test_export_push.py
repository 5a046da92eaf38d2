"""Export to a plain HF folder (checked by a process that never imports this project) and push."""

from __future__ import annotations

import calendar
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from apt_model import errors
from apt_model.hubs import PushResult
from apt_model.trust import PathPolicy

from apt_hf.exporter import ExportSpec, PushSpec, run_export, run_push
from apt_hf.hubs import get_hub
from apt_hf.importer import ImportSpec, run_import
from apt_hf.settings import HubSettings
from apt_hf_testing.helpers import READ_TOKEN, WRITE_TOKEN

IDS = [1, 7, 12, 40, 99, 3, 2]

# Runs with "-I" (isolated mode: no PYTHONPATH, no cwd on sys.path), so nothing of this
# project can be imported; it asserts as much before loading.
PLAIN_LOAD = """
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder = sys.argv[1]
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
with torch.no_grad():
    out = model(torch.tensor([json.loads(sys.argv[2])])).logits
assert not any(m.split(".")[0] in ("apt_model", "apt_hf") for m in sys.modules), "project code was imported"
print(json.dumps({"logits": out.flatten().tolist(), "roundtrip": tok.decode(tok("hello world 你好")["input_ids"],
                  skip_special_tokens=True)}))
"""


def store_logits(path: Path) -> list[float]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([IDS])).logits.flatten().tolist()


def import_local(store, run_job, folder: Path, name: str):
    run = run_job("StartImportModel",
                  lambda ctx: run_import(store, None, ImportSpec(source=str(folder), name=name), ctx))
    assert run.ok, run.final.error_message


@pytest.mark.parametrize("fixture", ["llama_dir", "gpt2_dir"])
def test_export_loads_with_plain_transformers_and_identical_logits(request, tmp_path, store, run_job, fixture):
    import_local(store, run_job, request.getfixturevalue(fixture), "m")
    out = tmp_path / "exported"
    run = run_job("StartExportModel", lambda ctx: run_export(store, ExportSpec(name="m", output_dir=out), ctx))
    assert run.ok, run.final.error_message
    assert not (out / "apt.json").exists() and (out / "README.md").is_file()
    proc = subprocess.run([sys.executable, "-I", "-c", PLAIN_LOAD, str(out), json.dumps(IDS)],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["logits"] == store_logits(store.model("m").path)  # bit-identical
    assert got["roundtrip"] == "hello world 你好"


def test_model_card_names_lineage_and_metrics(tmp_path, store, run_job, llama_dir):
    import_local(store, run_job, llama_dir, "base")
    with store.create("models", "child", operation="hf-train", parent="base",
                      parameters={"learning_rate": 0.001}, metrics={"eval_loss": 1.25}) as tmp:
        for f in store.model("base").path.iterdir():
            if f.name != "apt.json":
                (tmp / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "card"
    assert run_job("StartExportModel", lambda ctx: run_export(store, ExportSpec(name="child", output_dir=out), ctx)).ok
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers")
    assert "hf-import" in card and "hf-train" in card and "`base`" in card
    assert "| eval_loss | 1.25 |" in card and '"learning_rate": 0.001' in card


def test_export_goes_only_to_a_new_folder_under_exports(tmp_path, store, run_job, llama_dir):
    """Exports land in APT_HOME/exports/<name>, never replace anything, never leave the folder."""
    import_local(store, run_job, llama_dir, "m")
    paths = PathPolicy.create(store.root, [str(tmp_path)])

    def spec(output_dir: str):
        return ExportSpec.from_request(type("R", (), {"name": "m", "output_dir": output_dir})(), paths)

    assert spec("").output_dir == store.root / "exports" / "m-hf"
    out = spec("mine").output_dir
    assert out == store.root / "exports" / "mine"
    assert spec(str(out)).output_dir == out  # the same place, given as a path
    from apt_model.testing import JobRecorder

    assert run_export(store, spec("mine"), JobRecorder())["output_dir"] == str(out)
    with pytest.raises(errors.AlreadyExists):
        spec("mine")  # done once: never replaced
    (store.root / "exports" / "empty").mkdir()
    with pytest.raises(errors.AlreadyExists):
        spec("empty")  # not even an empty folder someone else made
    for outside in (str(tmp_path / "elsewhere"), "/etc/cron.d", str(store.root / "models" / "m")):
        with pytest.raises(errors.PermissionDenied, match="APT_HOME/exports"):
            spec(outside)
    with pytest.raises(errors.InvalidArgument):
        spec("relative/dir")


def test_a_failed_export_leaves_neither_its_folder_nor_its_temporary_one(tmp_path, store, run_job, llama_dir,
                                                                          monkeypatch):
    import_local(store, run_job, llama_dir, "m")
    from apt_hf import checkpoint as ckpt

    real_copy, copied = ckpt.copy_file, []

    def copy_then_fail(src, dst, on_bytes=None):
        if copied:
            raise OSError(28, "No space left on device")
        copied.append(real_copy(src, dst, on_bytes))
        written.append(Path(dst))

    written = []

    monkeypatch.setattr(ckpt, "copy_file", copy_then_fail)
    exports = store.root / "exports"
    run = run_job("StartExportModel",
                  lambda ctx: run_export(store, ExportSpec(name="m", output_dir=exports / "full"), ctx))
    assert run.final.error_code == "RESOURCE_EXHAUSTED" and "No space left" in run.final.error_message
    assert copied and list(exports.iterdir()) == []  # no claim, no .full.tmp-* half copy
    # the files were written in a hidden folder beside the claim, not in the claim itself
    assert written[0].parent.parent == exports and re.fullmatch(r"\.full\.tmp-[0-9a-f]{8}", written[0].parent.name)


def test_an_export_folder_made_after_the_start_call_is_left_as_it_is(store, run_job, llama_dir):
    import_local(store, run_job, llama_dir, "m")
    out = store.root / "exports" / "raced"
    out.mkdir(parents=True)
    (out / "theirs.txt").write_text("kept")
    run = run_job("StartExportModel", lambda ctx: run_export(store, ExportSpec(name="m", output_dir=out), ctx))
    assert run.final.error_code == "ALREADY_EXISTS"
    assert run.final.error_message == "The export folder 'raced' appeared meanwhile; choose another name."
    assert [p.name for p in out.parent.iterdir()] == ["raced"] and (out / "theirs.txt").read_text() == "kept"


def test_push_creates_private_repo_then_imports_back(store, run_job, hf_hub, no_xet, gpt2_dir):
    import_local(store, run_job, gpt2_dir, "mine")
    settings = HubSettings(hf_endpoint=hf_hub.url, hf_token=WRITE_TOKEN, hf_cache=store.root.parent / "cache")
    hub = get_hub("huggingface", settings)
    spec = PushSpec(name="mine", repo_id="alice/pushed", private=True, commit_message="first push", revision="main")
    run = run_job("StartPushModel", lambda ctx: run_push(store, hub, spec, ctx))
    assert run.ok, run.final.error_message
    repo = hf_hub.repos[("model", "alice/pushed")]
    assert repo.private and run.final.result["commit_sha"] == repo.branches["main"]
    files = hf_hub.files_at("alice/pushed")
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= files.keys()
    assert "apt.json" not in files
    assert max(run.metric_values("bytes_done")) == run.final.result["bytes"]
    assert store.model("mine").meta["pushes"][0]["commit_sha"] == repo.branches["main"]
    sent = hf_hub.lfs_bytes_received
    assert sent >= len(files["model.safetensors"])

    # pushing again to a new branch sends no weight bytes: the Hub already holds the LFS object
    again = PushSpec(name="mine", repo_id="alice/pushed", private=True, commit_message="again", revision="dev")
    assert run_job("StartPushModel", lambda ctx: run_push(store, hub, again, ctx)).ok
    assert hf_hub.lfs_bytes_received == sent and "dev" in repo.branches

    # online import of what was pushed (private: the read token is needed) gives the same model
    reader = get_hub("huggingface", HubSettings(hf_endpoint=hf_hub.url, hf_token=READ_TOKEN,
                                                hf_cache=store.root.parent / "cache2"))
    back = run_job("StartImportModel",
                   lambda ctx: run_import(store, reader, ImportSpec(source="alice/pushed", name="back"), ctx))
    assert back.ok, back.final.error_message
    assert store_logits(store.model("back").path) == store_logits(store.model("mine").path)


def test_push_needs_a_write_token(store, run_job, hf_hub, no_xet, llama_dir):
    import_local(store, run_job, llama_dir, "m")
    spec = PushSpec(name="m", repo_id="alice/x", commit_message="c")
    for token, match in [(None, "set HF_TOKEN"), (READ_TOKEN, "write access")]:
        hub = get_hub("huggingface", HubSettings(hf_endpoint=hf_hub.url, hf_token=token))
        run = run_job("StartPushModel", lambda ctx: run_push(store, hub, spec, ctx))
        assert run.final.error_code == "PERMISSION_DENIED", run.final.error_message
        assert match in run.final.error_message
    assert ("model", "alice/x") not in hf_hub.repos


def test_an_export_reports_every_byte_within_its_share_of_the_job(tmp_path, store):
    """write_hf_folder copies the files apt.json records and a model card, reports progress from 0
    to its share of the job (the rest is the push's), in the stage 'export' with bytes done of
    bytes total, and can be cancelled between files."""
    from apt_hf.exporter import write_hf_folder
    from apt_model.testing import JobRecorder, make_tiny_model

    make_tiny_model(store, "m")
    files = store.model("m").meta["files"]
    total = sum(f["size"] for f in files.values())
    for share in (0.9, 0.1):
        rec, dest = JobRecorder(), tmp_path / f"out-{share}"
        dest.mkdir()
        kwargs = {} if share == 0.9 else {"share": share}  # 0.9 is the default
        assert write_hf_folder(store, "m", dest, rec, **kwargs) == {"name": "m", "files": len(files) + 1,
                                                                    "bytes": total}
        assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == sorted(
            [*files, "README.md"])
        progress = [r["progress"] for r in rec.reports]
        assert progress == sorted(progress) and 0 < progress[0] and progress[-1] == pytest.approx(share)
        assert {r["stage"] for r in rec.reports} == {"export"}
        assert [r["bytes_total"] for r in rec.reports] == [total] * len(rec.reports)
        assert rec.reports[-1]["bytes_done"] == total
        assert rec.checks >= len(files)  # one cancellation check per file
    (store.model("m").path / "config.json").unlink()
    with pytest.raises(errors.InvalidArgument) as caught:
        write_hf_folder(store, "m", tmp_path / "none", JobRecorder())
    assert str(caught.value) == (f"{store.model('m').path} has no config.json: it is not a Hugging Face model "
                                 "folder.")


class RecordingHub:
    """A hub client that keeps what ``run_push`` hands it (the folder's files, the commit's
    options) and reports its upload as a client does: first without a total, then in halves.
    The real clients against the local hub server are tested above; this checks the job's own
    bookkeeping around the upload."""

    name = "huggingface"

    def __init__(self):
        self.uploads: list[dict] = []

    def upload(self, folder, repo_id, *, private, commit_message, revision, progress):
        files = {p.relative_to(folder).as_posix(): p.stat().st_size for p in folder.rglob("*") if p.is_file()}
        size = sum(files.values())
        self.uploads.append({"folder": folder, "files": files, "repo_id": repo_id, "private": private,
                             "commit_message": commit_message, "revision": revision})
        for done, total in ((0, None), (size // 2, size), (size, size)):
            progress(done, total)
        return PushResult(hub="huggingface", repo_id=repo_id, revision=revision, commit_sha=f"sha{len(self.uploads)}",
                          commit_url=f"http://hub.local/{repo_id}/commit/sha{len(self.uploads)}",
                          files=len(files), bytes=size)


def test_a_push_reports_its_upload_and_records_each_commit_in_the_model(store):
    from apt_model.testing import JobRecorder, make_tiny_model

    make_tiny_model(store, "m")
    hub, rec = RecordingHub(), JobRecorder()
    spec = PushSpec(name="m", repo_id="alice/m", private=True, commit_message="first", revision="dev")
    before = time.time()
    result = run_push(store, hub, spec, rec)
    (sent,) = hub.uploads
    assert {k: sent[k] for k in ("repo_id", "private", "commit_message", "revision")} == {
        "repo_id": "alice/m", "private": True, "commit_message": "first", "revision": "dev"}
    assert sorted(sent["files"]) == sorted([*store.model("m").meta["files"], "README.md"])
    # the folder was a scratch folder of the store's, and is gone
    assert sent["folder"].parent == store.root / ".scratch" and sent["folder"].name.startswith("push-m-")
    assert not sent["folder"].exists()
    size = sum(sent["files"].values())
    upload = [r for r in rec.reports if r["stage"] == "upload"]
    assert [(r["progress"], r["message"], r["bytes_done"], r["bytes_total"]) for r in upload] == [
        (pytest.approx(0.1), "0.0 of 0.0 MB", 0, 0.0),
        (pytest.approx(0.1 + 0.9 * (size // 2) / size), f"{size // 2 / 1e6:.1f} of {size / 1e6:.1f} MB",
         size // 2, float(size)),
        (pytest.approx(1.0), f"{size / 1e6:.1f} of {size / 1e6:.1f} MB", size, float(size))]
    assert rec.reports[-1] is upload[-1]  # the export's 10% came first
    export = [r["progress"] for r in rec.reports if r["stage"] == "export"]
    assert export and max(export) == pytest.approx(0.1)
    stamp = result.pop("time")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    assert before - 1 <= calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) <= time.time() + 1
    seconds = result.pop("seconds")
    assert 0 <= seconds <= time.time() - before
    assert result == {"name": "m", "hub": "huggingface", "repo_id": "alice/m", "revision": "dev", "commit_sha": "sha1",
                      "commit_url": "http://hub.local/alice/m/commit/sha1", "files": len(sent["files"]),
                      "bytes": size, "private": True}
    assert store.model("m").meta["pushes"] == [{"hub": "huggingface", "repo_id": "alice/m", "revision": "dev",
                                                "commit_sha": "sha1", "time": stamp}]

    # a second push adds its commit after the first
    run_push(store, hub, PushSpec(name="m", repo_id="bob/m", commit_message="again"), JobRecorder())
    assert [(p["repo_id"], p["revision"], p["commit_sha"]) for p in store.model("m").meta["pushes"]] == [
        ("alice/m", "dev", "sha1"), ("bob/m", "main", "sha2")]
    assert hub.uploads[1]["private"] is False


def test_a_push_cancelled_during_its_upload_records_nothing_and_leaves_no_scratch(store):
    from apt_model.testing import JobRecorder, make_tiny_model

    make_tiny_model(store, "m")
    files = len(store.model("m").meta["files"])
    hub = RecordingHub()
    rec = JobRecorder(cancel_after=files + 1)  # the export's checks pass, the upload's second report cancels
    with pytest.raises(errors.Cancelled):
        run_push(store, hub, PushSpec(name="m", repo_id="alice/m"), rec)
    assert hub.uploads and not any((store.root / ".scratch").iterdir())
    assert "pushes" not in store.model("m").meta
    with pytest.raises(errors.NotFound):
        run_push(store, hub, PushSpec(name="gone", repo_id="alice/gone"), JobRecorder())
    assert len(hub.uploads) == 1
