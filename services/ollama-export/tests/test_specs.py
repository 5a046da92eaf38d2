"""ollama-export's request rules one by one: the export folder, the output type, the Ollama URL
(its form, and the operator's list for any other than APT_OLLAMA_URL), model names, and every
default, each refusal as its whole sentence. Written from a ``make mutate`` run of ollama-spec
(docs/mutation.md); the service tests check these through a served plugin by a word each.
"""

from __future__ import annotations

import pytest

from apt_model import errors
from apt_model.gen.apt.plugins.ollama_export.v1 import ollama_export_pb2 as pb
from apt_model.trust import EndpointPolicy
from apt_ollama.export_job import ExportSpec
from apt_ollama.ollama_client import check_model_name, check_url

OPERATORS = "http://ollama:11434"


def _spec(endpoints: EndpointPolicy = EndpointPolicy(), default: str = "", **fields) -> ExportSpec:
    return ExportSpec.from_request(pb.ExportRequest(name=fields.pop("name", "m"), **fields), default, endpoints)


def test_an_export_request_becomes_its_spec_with_every_default():
    assert _spec() == ExportSpec(name="m", output_dir="m-f16", outtype="f16", ollama_url="", ollama_model="m",
                                 verify=True, system="", parameters={}, num_ctx=0)
    full = _spec(name="m", output_dir="out.v1", outtype="Q8_0", ollama_url=OPERATORS + "/", ollama_model="me/m:q8",
                 skip_verify=True, system="be brief", parameters={"temperature": "0.2"}, num_ctx=4096,
                 default=OPERATORS)
    assert full == ExportSpec(name="m", output_dir="out.v1", outtype="q8_0", ollama_url=OPERATORS + "/",
                              ollama_model="me/m:q8", verify=False, system="be brief",
                              parameters={"temperature": "0.2"}, num_ctx=4096)
    assert _spec(default=OPERATORS).ollama_url == OPERATORS  # the operator's, when the caller names none
    assert ExportSpec.from_request(pb.ExportRequest(name="m")).ollama_url == ""  # no Ollama set anywhere
    assert _spec(output_dir="x" * 128).output_dir == "x" * 128 and _spec(num_ctx=0).num_ctx == 0


@pytest.mark.parametrize("output_dir", ["../etc", "a/b", ".hidden", "-x", "a..b", "x" * 129, "a b", "x\n"])
def test_an_output_folder_that_is_not_one_plain_name_is_refused(output_dir):
    with pytest.raises(errors.InvalidArgument) as caught:
        _spec(output_dir=output_dir)
    assert str(caught.value) == (f"output_dir {output_dir!r} must be one folder name (letters, digits, '.', '_', "
                                 "'-'); exports are written under APT_HOME/exports/.")


def test_other_refusals_by_sentence():
    with pytest.raises(errors.InvalidArgument) as caught:
        _spec(outtype="q4_k")
    assert str(caught.value) == "Unknown output type 'q4_k'; choose one of: f32, f16, q8_0."
    with pytest.raises(errors.InvalidArgument) as caught:
        _spec(num_ctx=-1)
    assert str(caught.value) == "num_ctx must be positive, got -1."
    with pytest.raises(errors.InvalidArgument, match="^Invalid model name 'M'"):
        _spec(name="M")
    with pytest.raises(errors.InvalidArgument) as caught:
        _spec(ollama_model="bad name")
    assert str(caught.value) == ("'bad name' is not a valid Ollama model name; use e.g. 'mymodel', 'mymodel:q8_0' or "
                                 "'me/mymodel:latest'.")


def test_an_ollama_url_other_than_the_operators_must_be_on_the_allowed_list():
    elsewhere = "http://10.0.0.5:11434"
    with pytest.raises(errors.PermissionDenied, match=r"^The ollama_url 'http://10\.0\.0\.5:11434' is not an endpoint"):
        _spec(ollama_url=elsewhere, default=OPERATORS)
    with pytest.raises(errors.PermissionDenied):
        _spec(ollama_url=elsewhere)  # no operator's URL at all
    assert _spec(ollama_url=elsewhere, endpoints=EndpointPolicy((elsewhere,))).ollama_url == elsewhere
    assert _spec(ollama_url=OPERATORS, default=OPERATORS).ollama_url == OPERATORS  # never on the list: it is theirs
    with pytest.raises(errors.InvalidArgument) as caught:
        _spec(ollama_url="localhost:11434", endpoints=EndpointPolicy(("localhost:11434",)))
    assert str(caught.value) == "Ollama URL 'localhost:11434' must look like http://host:11434."


def test_urls_and_model_names():
    assert check_url("http://h:11434/") == "http://h:11434" and check_url("https://h") == "https://h"
    assert check_url("http://BOX/") == "http://BOX"  # only slashes are stripped
    for bad in ("ftp://h", "http://", "h:11434", "", "file:///x"):
        with pytest.raises(errors.InvalidArgument) as caught:
            check_url(bad)
        assert str(caught.value) == f"Ollama URL {bad!r} must look like http://host:11434."
    for good in ("m", "m:q8_0", "me/m:latest", "M-1.2_b", "m:" + "t" * 128):
        assert check_model_name(good) == good
    for bad in ("", ":x", "a/b/c", "-m", "m:" + "t" * 129, "m:", "me/", "a b", "m\n", "me/m:q8\n"):
        with pytest.raises(errors.InvalidArgument):
            check_model_name(bad)
