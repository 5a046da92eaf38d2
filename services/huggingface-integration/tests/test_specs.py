"""huggingface-integration's export and push requests, rule by rule: where an export may be written
(and what it may never replace), branch names, repo ids, hubs, and every default, each refusal
as its whole sentence. Written from a ``make mutate`` run of hf-export (docs/mutation.md): the
export and push tests go through whole jobs, where a default or a sentence can change unseen.
"""

from __future__ import annotations

import os

import pytest

from apt_hf.exporter import ExportSpec, PushSpec
from apt_hf.hubs import HUBS, check_repo_id, get_hub
from apt_hf.settings import HubSettings
from apt_model import errors
from apt_model.gen.apt.plugins.huggingface_integration.v1 import huggingface_pb2 as pb
from apt_model.trust import PathPolicy


@pytest.fixture
def paths(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return PathPolicy.create(home, [str(tmp_path)])


def _export(paths, name="m", output_dir="") -> ExportSpec:
    return ExportSpec.from_request(pb.ExportModelRequest(name=name, output_dir=output_dir), paths)


def test_an_export_lands_in_its_own_new_folder_under_exports(paths):
    exports = os.path.realpath(os.path.join(paths.home, "exports"))
    assert _export(paths, " m ") == ExportSpec(name="m", output_dir=paths.export_dir("m-hf"))
    assert _export(paths, "m", " mine ").output_dir == paths.export_dir("mine")
    os.makedirs(exports, exist_ok=True)
    assert _export(paths, "m", os.path.join(exports, "given")).output_dir == paths.export_dir("given")
    os.makedirs(os.path.join(exports, "taken"))
    os.symlink("/nonexistent", os.path.join(exports, "dangling"))
    for taken in ("taken", "dangling"):
        with pytest.raises(errors.AlreadyExists) as caught:
            _export(paths, "m", taken)
        assert str(caught.value) == (f"The export folder {taken!r} already exists in APT_HOME/exports; choose "
                                     "another name (exports never replace anything).")
    for outside in ("/etc/cron.d", os.path.join(exports, "a", "b"), os.path.dirname(exports)):
        with pytest.raises(errors.PermissionDenied) as caught:
            _export(paths, "m", outside)
        assert str(caught.value) == (
            f"output_dir {outside!r} is outside APT_HOME/exports: exports are written only there. Give a folder "
            "name (e.g. m-hf); the export lands in APT_HOME/exports/<name>.")
    with pytest.raises(errors.InvalidArgument, match="^Invalid export name 'a/b'"):
        _export(paths, "m", "a/b")
    with pytest.raises(errors.InvalidArgument, match="^Invalid model name 'M'"):
        _export(paths, "M")


def test_a_push_request_becomes_its_spec_with_every_default():
    spec = PushSpec.from_request(pb.PushModelRequest(name=" m ", repo_id=" org/repo "))
    assert spec == PushSpec(name="m", repo_id="org/repo", hub="huggingface", private=False,
                            commit_message="Upload m from the APT platform", revision="main")
    full = PushSpec.from_request(pb.PushModelRequest(name="m", repo_id="repo", private=True, hub=" ModelScope ",
                                                     commit_message=" first ", revision=" dev/v1 "))
    assert full == PushSpec(name="m", repo_id="repo", hub="modelscope", private=True, commit_message="first",
                            revision="dev/v1")
    assert PushSpec.from_request(pb.PushModelRequest(name="m", repo_id="r", revision="X-1.x")).revision == "X-1.x"
    with pytest.raises(errors.InvalidArgument) as caught:
        PushSpec.from_request(pb.PushModelRequest(name="M", repo_id="org/repo"))
    assert str(caught.value).startswith("Invalid model name 'M': use 1-64 characters")


@pytest.mark.parametrize("revision", ["a b", "a~1", "a^", "a:b", "a?", "a*", "a[0]", "a\\b", "-x", "/x", "a..b"])
def test_a_push_to_a_branch_git_would_refuse_is_refused_first(revision):
    with pytest.raises(errors.InvalidArgument) as caught:
        PushSpec.from_request(pb.PushModelRequest(name="m", repo_id="org/repo", revision=revision))
    assert str(caught.value) == f"{revision!r} is not a valid branch name."


def test_repo_ids_and_hubs():
    for good in ("repo", "org/repo", "Org-1/re_po.v2", "a" * 96, f"{'o' * 96}/{'r' * 96}"):
        assert check_repo_id(good) == good
    for bad in ("", "org/", "/repo", "a/b/c", "org/re po", "..", "org/..x", "-org/repo", "a" * 97):
        with pytest.raises(errors.InvalidArgument) as caught:
            check_repo_id(bad)
        assert str(caught.value) == (
            f"{bad!r} is neither an existing local folder nor a valid repo id; give 'org/name' (letters, digits, "
            "'-', '_', '.') or the path of a Hugging Face model folder.")
        with pytest.raises(errors.InvalidArgument):
            PushSpec.from_request(pb.PushModelRequest(name="m", repo_id=bad))
    assert HUBS == ("huggingface", "modelscope")
    settings = HubSettings.from_env({})
    for name, kind in (("", "HfClient"), ("hf", "HfClient"), (" HuggingFace ", "HfClient"), ("ms", "ModelScopeClient"),
                       ("modelscope", "ModelScopeClient")):
        assert type(get_hub(name, settings)).__name__ == kind, name
    with pytest.raises(errors.InvalidArgument) as caught:
        get_hub("gitlab", settings)
    assert str(caught.value) == "Unknown hub 'gitlab'; choose one of: huggingface, modelscope."


def test_each_hub_client_is_built_from_its_own_settings(tmp_path):
    """The endpoint, token, cache, offline switch and timeout of the settings reach the client they
    belong to (HF_* the Hugging Face client, MODELSCOPE_* ModelScope's), with the offline hint."""
    settings = HubSettings(hf_endpoint="http://hf.local", hf_token="hf-secret", hf_cache=tmp_path / "hf",
                           offline=True, modelscope_endpoint="http://ms.local", modelscope_token="ms-secret",
                           modelscope_cache=tmp_path / "ms", timeout_s=7.5)
    hf = get_hub("huggingface", settings)
    assert (hf.endpoint, hf.token, hf.cache_dir, hf.offline, hf.timeout_s) == (
        "http://hf.local", "hf-secret", tmp_path / "hf", True, 7.5)
    assert hf.retry_hint == "Set HF_HUB_OFFLINE=1 to import from the local cache."
    ms = get_hub("modelscope", settings)
    assert (ms.endpoint, ms.token, ms.cache_dir, ms.offline, ms.retry_hint) == (
        "http://ms.local", "ms-secret", tmp_path / "ms", True, hf.retry_hint)
    online = get_hub("ms", HubSettings())
    assert online.offline is False and online.token is None and online.cache_dir is None
