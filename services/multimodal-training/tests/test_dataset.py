"""StartCreateDataset through the real server: every up-front check and what gets stored."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import grpc
import pytest
from safetensors.torch import load_file

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugins.multimodal_training.v1 import multimodal_pb2 as pb
from apt_model.gen.apt.plugins.multimodal_training.v1 import multimodal_pb2_grpc
from apt_model.runtime.jobs_grpc import job_result
from apt_model.runtime.testing import serve_plugin, wait_job
from apt_model.store import Store

from apt_multimodal import model as mm

PLUGIN_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def service(home, data):
    with serve_plugin(PLUGIN_DIR, home, data_roots=(str(data),)) as (channel, app):
        yield multimodal_pb2_grpc.MultimodalStub(channel), channel


def create(service, manifest: Path, name: str = "ds", **kw) -> job_pb2.Job:
    stub, channel = service
    return wait_job(channel, stub.StartCreateDataset(pb.CreateDatasetRequest(
        name=name, manifest_path=str(manifest), **kw)).id)


def failed_with(job, code: str, *needles: str) -> None:
    assert job.state == job_pb2.JOB_STATE_FAILED, job.error.message
    assert job.error.code == code, job.error
    for needle in needles:
        assert needle in job.error.message, job.error.message


def test_digits_become_one_shard_of_uint8_images_with_a_report(service, home, data, write_manifest):
    job = create(service, data / "digits" / "manifest.jsonl", image_size=16)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    result = job_result(job)
    assert (result["rows"], result["images"], result["rejected"]) == (24, 24, 0)
    folder = Store(home).dataset("ds").path
    shard = load_file(str(folder / "shard-00000.safetensors"))
    assert shard["images"].shape == (24, 3, 16, 16) and str(shard["images"].dtype) == "torch.uint8"
    rows = [json.loads(line) for line in (folder / "rows.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows[0]["media"] == {"image": [0]}  # the manifest's string path became a one-element list
    assert "手写数字" in rows[0]["text"]
    assert json.loads((folder / "report.json").read_text())["images"] == 24
    assert (folder / "rejected.jsonl").read_text() == ""


def test_stereo_off_rate_audio_is_downmixed_resampled_and_counted(service, home, data, write_manifest):
    manifest = write_manifest(data, [
        {"text": "<audio> a tone", "audios": "odd/stereo.wav"},
        {"text": "<audio> seven", "audios": ["spoken/s0.wav"]}])
    job = create(service, manifest)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    result = job_result(job)
    assert (result["audios"], result["downmixed"], result["resampled"]) == (2, 1, 2)
    shard = load_file(str(Store(home).dataset("ds").path / "shard-00000.safetensors"))
    assert shard["audios"].shape[:2] == (2, 32) and shard["audio_frames"][0] == 101  # 1 s at 10 ms hops


def test_over_long_audio_is_rejected_and_listed_or_truncated_when_asked(service, home, data, write_manifest):
    rows = [{"text": "<audio> long", "audios": "odd/long.wav"}, {"text": "<audio> x", "audios": "spoken/s1.wav"}]
    manifest = write_manifest(data, rows)
    job = create(service, manifest)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    assert job_result(job)["rejected"] == 1 and "row 1 rejected" in " ".join(job.response and job_result(job)["warnings"])
    rejected = (Store(home).dataset("ds").path / "rejected.jsonl").read_text().splitlines()
    assert len(rejected) == 1 and "too long" in json.loads(rejected[0])["reason"]
    job = create(service, manifest, name="cut", truncate_audio=True)
    assert job_result(job)["truncated"] == 1 and job_result(job)["rejected"] == 0


@pytest.mark.parametrize("rows,needles", [
    ([{"text": "<image> a", "images": "odd/broken.png"}], ["row 1", "broken.png", "does not decode"]),
    ([{"text": "<image> a", "images": "nowhere.png"}], ["row 1", "nowhere.png", "missing"]),
    ([{"text": "a digit", "images": "digits/d0.png"}], ["row 1", "0 <image> placeholder(s) and 1 images"]),
    ([{"text": "<image> <image>", "images": ["digits/d0.png"]}], ["2 <image> placeholder(s) and 1 images"]),
    ([{"text": "<image> a", "images": "digits/d0.png", "caption": "x"}], ["unknown column(s) caption",
                                                                          "accepted: audios, images, text"]),
    ([{"text": "<image> a", "images": "../../home/models/lm/config.json"}], ["outside the data folder"]),
])
def test_a_bad_row_fails_the_job_naming_it_and_stores_nothing(service, home, data, rows, needles, write_manifest):
    rows = [{"text": "<image> fine", "images": "digits/d1.png"}] + rows  # the bad row is row 2
    needles = [n.replace("row 1", "row 2") for n in needles]
    job = create(service, write_manifest(data, rows), modalities=["image", "audio"])
    failed_with(job, "INVALID_ARGUMENT", "nothing was stored", *needles)
    assert not Store(home).exists("datasets", "ds")


def test_a_manifest_outside_the_data_roots_is_permission_denied(service, home, data, write_manifest):
    stub, _ = service
    outside = write_manifest(home.parent, [{"text": "<image> a", "images": "data/digits/d0.png"}])
    with pytest.raises(grpc.RpcError) as info:
        stub.StartCreateDataset(pb.CreateDatasetRequest(name="ds", manifest_path=str(outside)))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_csv_folder_with_a_list_cell_is_read(service, home, data, write_manifest):
    folder = data / "digits"
    (folder / "metadata.csv").write_text('text,images\n"<image> <image> two digits","[""d0.png"", ""d1.png""]"\n',
                                         encoding="utf-8")
    (folder / "manifest.jsonl").unlink()
    job = create(service, folder)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    assert job_result(job)["images"] == 2


def write_clip(path: Path) -> Path:
    """An 8-frame 32-px clip getting brighter frame by frame (MPEG-4 part 2, in the av wheel's FFmpeg)."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(8):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 30, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def test_a_video_is_stored_as_evenly_spaced_frames_and_trains_through_the_image_tower(service, home, data,
                                                                                     write_manifest):
    write_clip(data / "clip.mp4")
    write_clip(data / "clip2.mp4")
    rows = [{"text": "<video> getting brighter", "videos": "clip.mp4"},
            {"text": "<video> also brighter", "videos": ["clip2.mp4"]}]
    job = create(service, write_manifest(data, rows), image_size=16)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    assert job_result(job)["videos"] == 2
    frames = load_file(str(Store(home).dataset("ds").path / "shard-00000.safetensors"))["videos"]
    assert frames.shape == (2, 8, 3, 16, 16) and frames[0, :, 0, 0, 0].tolist() == sorted(frames[0, :, 0, 0, 0].tolist())
    stub, channel = service
    job = wait_job(channel, stub.StartTrain(pb.TrainRequest(
        model="lm", dataset="ds", output_name="v", device="cpu", max_steps=3, batch_size=2, encoder_width=32,
        encoder_layers=1, freeze=["image_encoder"])).id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    assert job_result(job)["added_tokens"] == ["<video>"]
    model, _ = mm.load(Store(home).model("v").path)
    assert mm.module_names(model) == ["lm", "image_encoder", "video_encoder", "video_projector"]
    assert model.tokens_per_item() == {"video": 8 * 4}  # 8 frames of (16 / 8)^2 patches
    job = wait_job(channel, stub.StartEvaluate(pb.EvaluateRequest(model="v", dataset="ds", device="cpu")).id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    assert set(job_result(job)["per_modality_accuracy"]) == {"video"}


def test_video_without_av_is_failed_precondition_naming_it(home, data, write_manifest, monkeypatch, job_recorder):
    from apt_model import errors
    from apt_multimodal.create import CreateSpec, create_dataset
    from apt_multimodal.media import MediaSpec

    monkeypatch.setitem(sys.modules, "av", None)  # an image built without the optional package
    (data / "clip.mp4").write_bytes(b"\0")  # never opened: the missing package is found first
    manifest = write_manifest(data, [{"text": "<video> x", "videos": "clip.mp4"}])
    with pytest.raises(errors.FailedPrecondition, match="`av` package"):
        create_dataset(Store(home), CreateSpec("ds", manifest, ("video",), MediaSpec()), job_recorder())
    assert not Store(home).exists("datasets", "ds")


def test_cancel_during_the_checks_leaves_no_dataset(home, data, job_recorder):
    from apt_model import errors
    from apt_multimodal.create import CreateSpec, create_dataset
    from apt_multimodal.media import MediaSpec

    spec = CreateSpec("ds", data / "digits" / "manifest.jsonl", ("image",), MediaSpec())
    with pytest.raises(errors.Cancelled):
        create_dataset(Store(home), spec, job_recorder(cancel_after=5))
    assert not Store(home).exists("datasets", "ds")
    assert not list((home / "datasets").glob(".tmp-*"))


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng (Debian package) is not installed")
def test_a_voice_variant_espeak_ignores_is_caught_before_it_poses_as_a_held_out_voice():
    from apt_multimodal import sample_data

    sample_data.distinct_voices(("en-us", "en-us+f4", "en", "en+m7"))
    with pytest.raises(ValueError, match="'en-gb' and 'en-gb\\+m7' give the same audio"):
        sample_data.distinct_voices(("en-us", "en-gb", "en-gb+m7"))
