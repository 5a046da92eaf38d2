"""A StartProcess request becomes its spec (apt_data.spec): every default, each refusal's whole
sentence, the held-out dataset's name and the lineage stored with the result. What `make mutate`'s
data-spec target runs (under a second)."""

from __future__ import annotations

import pytest

from apt_model import errors
from apt_model.gen.apt.plugins.data_processors.v1 import data_processors_pb2 as pb

from apt_data.spec import EVAL_SUFFIX, MAX_WORKERS, ProcessSpec


def spec(**fields) -> ProcessSpec:
    return ProcessSpec.from_request(pb.ProcessRequest(**fields))


def refusal(**fields) -> errors.InvalidArgument:
    with pytest.raises(errors.InvalidArgument) as info:
        spec(**fields)
    return info.value


def test_a_minimal_request_gets_every_default():
    assert spec(name="out", paths=["/data/a.jsonl"]) == ProcessSpec(
        name="out", paths=("/data/a.jsonl",), dataset="", text_field="text", cleaning="basic", dedup=False,
        threshold=0.8, num_perm=128, eval_fraction=0.0, quality_filters=True, tokenizer_model="", seed=0,
        html_extractor="main", overwrite=False, confirm=True, workers=1)


def test_every_field_given_is_kept():
    got = spec(name="out", dataset="raw", text_field="body", cleaning="chinese", dedup=True, threshold=0.5,
               num_perm=64, eval_fraction=0.25, no_quality_filters=True, tokenizer_model="tok", seed=7,
               html_extractor="all", overwrite=True, no_confirm=True, workers=MAX_WORKERS)
    assert got == ProcessSpec(
        name="out", paths=(), dataset="raw", text_field="body", cleaning="chinese", dedup=True, threshold=0.5,
        num_perm=64, eval_fraction=0.25, quality_filters=False, tokenizer_model="tok", seed=7, html_extractor="all",
        overwrite=True, confirm=False, workers=64)


def test_nothing_to_read_is_refused_saying_what_to_pass():
    assert refusal(name="out").message == "Nothing to process: pass --paths FILE (repeatable) or --dataset NAME."


def test_names_are_store_names():
    assert refusal(name="Bad/x", dataset="raw").message.startswith("Invalid dataset name 'Bad/x':")
    assert refusal(name="out", dataset="../raw").message.startswith("Invalid dataset name '../raw':")
    assert refusal(name="o" * 60, dataset="raw", eval_fraction=0.1).message.startswith(
        f"Invalid dataset name {'o' * 60 + EVAL_SUFFIX!r}:")   # the held-out dataset's name must be one too
    assert spec(name="o" * 59, dataset="raw", eval_fraction=0.1).eval_name == "o" * 59 + "-eval"


@pytest.mark.parametrize("workers", [-1, MAX_WORKERS + 1])
def test_workers_out_of_range_are_refused_naming_the_field(workers):
    exc = refusal(name="out", dataset="raw", workers=workers)
    assert exc.message == f"workers must be between 1 and 64; got {workers}."
    assert exc.violations == [("workers", exc.message)]


def test_an_unknown_cleaning_strategy_is_refused_before_the_job():
    assert refusal(name="out", dataset="raw", cleaning="shiny").message.startswith(
        "Unknown cleaning strategy 'shiny'; use one of aggressive, basic, chinese, code")


def test_the_held_out_dataset_exists_only_with_an_eval_fraction():
    assert spec(name="out", dataset="raw").eval_name == ""
    assert spec(name="out", dataset="raw", eval_fraction=0.01).eval_name == "out-eval"


@pytest.mark.parametrize("fields, needs", [({}, False), ({"dedup": True}, True), ({"eval_fraction": 0.1}, True)])
def test_families_are_built_for_dedup_or_a_split(fields, needs):
    assert spec(name="out", dataset="raw", **fields).needs_families is needs


def test_the_lineage_is_what_decides_the_content():
    got = spec(name="out", paths=["/d/a", "/d/b"], overwrite=True, workers=4, seed=3).lineage()
    assert got == {"paths": ["/d/a", "/d/b"], "dataset": "", "text_field": "text", "cleaning": "basic",
                   "dedup": False, "threshold": 0.8, "num_perm": 128, "eval_fraction": 0.0, "quality_filters": True,
                   "tokenizer_model": "", "seed": 3, "html_extractor": "main", "confirm": True}
