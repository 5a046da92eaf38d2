"""Typed job results (issue 16, item 4): a job's dict becomes its operation's declared message,
strictly; Job.response carries it, Job.result is its JSON view; jobs without a response (from
services built before typed results) still read."""

from __future__ import annotations

import time

import pytest
from google.protobuf import json_format, struct_pb2

from apt_model.cli.common import to_dict
from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.gateway.v1 import gateway_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.gen.apt.plugins.echo.v1 import echo_pb2, echo_pb2_grpc
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2
from apt_model.runtime import results
from apt_model.runtime.jobs import JobSnapshot, JobState
from apt_model.runtime.jobs_grpc import FINAL_STATES, job_result, job_to_proto

PRUNE = "/apt.plugins.model_pruning.v1.Pruning/StartPrune"
PRUNE_RESULT = "apt.plugins.model_pruning.v1.PruneResult"


def _finished(gateway, job_id: str) -> job_pb2.Job:
    """The last snapshot of WatchJob, asked at the gateway (which routes it to the plugin)."""
    last = None
    for last in plugin_pb2_grpc.JobsStub(gateway.channel()).WatchJob(job_pb2.WatchJobRequest(id=job_id), timeout=60):
        pass
    assert last is not None and last.state in FINAL_STATES, last
    return last


def test_a_plugin_job_ends_with_its_declared_message_through_the_gateway(echo_gateway):
    echo = echo_pb2_grpc.EchoStub(echo_gateway.channel())
    job = echo.StartEcho(echo_pb2.StartEchoRequest(text="héllo", steps=2, interval_seconds=0.01,
                                                   warning="just so"), timeout=10)
    assert job.id.startswith("echo:") and not job.HasField("response")
    final = _finished(echo_gateway, job.id)
    assert final.state == job_pb2.JOB_STATE_SUCCEEDED, final.error
    assert final.response.TypeName() == "apt.plugins.echo.v1.EchoResult"
    typed = echo_pb2.EchoResult()
    assert final.response.Unpack(typed)
    assert (typed.text, typed.steps, typed.length, list(typed.warnings)) == ("héllo", 2, 5, ["just so"])
    assert results.typed_result(final) == typed
    # the Struct view: the same message (numbers are doubles there)
    assert job_result(final) == {"text": "héllo", "steps": 2.0, "length": 5.0, "warnings": ["just so"]}
    # a GetJob afterwards says the same
    again = plugin_pb2_grpc.JobsStub(echo_gateway.channel()).GetJob(job_pb2.GetJobRequest(id=job.id), timeout=10)
    assert again.response == final.response and again.result == final.result


def test_a_result_with_an_undeclared_key_fails_the_job_with_internal(echo_gateway):
    """The strictness guard: the echo plugin returns a key EchoResult lacks, on request. The job
    fails with INTERNAL naming the key, nothing of the result reaches the client, and the
    plugin's log says the same."""
    echo = echo_pb2_grpc.EchoStub(echo_gateway.channel())
    job = echo.StartEcho(echo_pb2.StartEchoRequest(text="x", undeclared_key="surprise"), timeout=10)
    final = _finished(echo_gateway, job.id)
    assert final.state == job_pb2.JOB_STATE_FAILED and final.error.code == "INTERNAL", final
    assert "surprise" in final.error.message and "apt.plugins.echo.v1.EchoResult" in final.error.message
    assert job.id in final.error.message
    assert not final.HasField("response") and not final.HasField("result")
    log = echo_gateway.settings.home / "logs" / "echo-0.log"
    deadline = time.monotonic() + 5
    while "surprise" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"job {job.id} returned a result that does not fit apt.plugins.echo.v1.EchoResult" in log.read_text()


@pytest.mark.parametrize("result,where", [
    ({"model": 3}, "model is int 3, the field is string"),
    ({"eval_blocks": 2.0}, "eval_blocks is float 2.0, the field is int32"),
    ({"eval_blocks": "2"}, "eval_blocks is str '2'"),
    ({"speedup": True}, "speedup is bool True, the field is double"),
    ({"semi_structured_2_4": 1}, "semi_structured_2_4 is int 1, the field is bool"),
    ({"ratio_achieved": None}, "ratio_achieved is None, but the field cannot be unset"),
    ({"before": {"parameters": {"total": 1, "embedding": 2}}},
     "before.parameters.embedding: apt.plugins.model_pruning.v1.ParameterCounts has no field 'embedding'"),
    ({"sparsity_by_layer": {"q": {"shape": "8x8"}}}, "sparsity_by_layer['q'].shape is a str, not a list"),
    ({"structured": {"heads": {"query_heads": [8, 6.5]}}}, "structured.heads.query_heads[1] is float 6.5"),
    ({"eval_blocks": 2 ** 40}, "Value out of range"),
    ({"lottery": [1]}, "lottery is a list, not an object"),
    ({"reload": {"finite": True}, "warnings": "one"}, "warnings is a str, not a list"),
])
def test_a_result_that_does_not_fit_is_refused_naming_the_key(result, where):
    with pytest.raises(results.ResultMismatch) as err:
        results.to_message(pruning_pb2.PruneResult, result)
    assert where in str(err.value)


def test_the_json_view_is_the_message_with_integers_as_numbers():
    typed = results.to_message(pruning_pb2.PruneResult, {
        "model": "m", "before": {"parameters": {"total": 2 ** 40}, "perplexity": None, "latency_ms": 1},
        "sparsity_by_layer": {"q": {"shape": [8, 8], "sparsity": 0.5}}, "perplexity_note": "no text",
    })
    assert typed.before.parameters.total == 2 ** 40 and not typed.before.HasField("perplexity")
    view = results.json_view(typed)
    assert view["before"] == {"parameters": {"total": 2 ** 40, "non_embedding": 0, "nonzero": 0},
                              "prunable_sparsity": 0.0, "latency_ms": 1.0, "size_bytes": 0}
    assert view["sparsity_by_layer"] == {"q": {"shape": [8, 8], "sparsity": 0.5}}
    assert view["warnings"] == [] and view["perplexity_note"] == "no text" and "perplexity_ratio" not in view
    assert "after" not in view and "structured" not in view  # messages not given stay unset
    assert json_format.ParseDict(view, pruning_pb2.PruneResult()) == typed  # the same message


def _old_job(operation: str, result: dict) -> job_pb2.Job:
    """A finished job as a service built before typed results sends it: a Struct, no response."""
    return job_to_proto(JobSnapshot(id="model-pruning:0ld", operation=operation, state=JobState.SUCCEEDED,
                                    progress=1.0, result=result))


def test_a_job_from_before_typed_results_still_reads():
    old = _old_job(PRUNE, {"model": "m", "output": "m-p", "ratio_achieved": 0.5, "recovery_loss_last": None,
                           "before": {"parameters": {"total": 1234, "nonzero": 1000}, "perplexity": None},
                           "eval_blocks": 4, "warnings": []})
    assert not old.HasField("response") and isinstance(old.result, struct_pb2.Struct)
    typed = results.typed_result(old)  # read from the Struct: whole doubles become integers
    assert isinstance(typed, pruning_pb2.PruneResult)
    assert (typed.before.parameters.total, typed.eval_blocks, typed.output) == (1234, 4, "m-p")
    assert not typed.HasField("recovery_loss_last") and not typed.before.HasField("perplexity")
    assert to_dict(old)["result"]["before"]["parameters"]["total"] == 1234  # the CLI's --json
    # a Struct that does not read as the declared type says so and where to look instead
    with pytest.raises(ValueError, match=r"predates typed results .* apt\.gateway\.v1\.TrainResult .* use job\.result"):
        results.typed_result(_old_job("/apt.gateway.v1.Core/StartTrain", {"model": "m", "loss_curve": [[1, 5.0]]}))
    assert results.typed_result(job_pb2.Job(id="x:1", operation=PRUNE, state=job_pb2.JOB_STATE_RUNNING)) is None


def test_the_cli_json_of_a_typed_job_leaves_the_any_to_typed_clients():
    job = job_to_proto(JobSnapshot(
        id="gateway:1", operation="/apt.gateway.v1.Core/StartTrain", state=JobState.SUCCEEDED,
        result={"model": "m"}, response=gateway_pb2.TrainResult(model="m")))
    assert job.HasField("response")
    data = to_dict(job)
    assert "response" not in data and data["result"] == {"model": "m"}
    assert job.HasField("response")  # the caller's message is left as it was


def test_a_start_with_an_operation_that_declares_no_result_is_refused():
    from apt_model.runtime.jobs import JobManager

    jobs = JobManager("unit", max_workers=1)
    try:
        with pytest.raises(LookupError, match="is not a method of a service"):
            jobs.start("/test/op", lambda ctx: {})
        with pytest.raises(LookupError, match="does not start jobs"):
            jobs.start("/apt.plugin.v1.Jobs/GetJob", lambda ctx: {})
        assert jobs.list() == []
    finally:
        jobs.shutdown()


def test_an_unknown_result_type_in_a_response_is_named():
    job = job_pb2.Job(id="other:1", state=job_pb2.JOB_STATE_SUCCEEDED)
    job.response.type_url = "type.googleapis.com/some.plugin.v1.Unknown"
    with pytest.raises(ValueError, match="some.plugin.v1.Unknown, a message this program does not know"):
        results.typed_result(job)


@pytest.mark.parametrize("result,message", [
    ({"model": 3}, "model is int 3, the field is string"),
    ([1], "the result is a list, not an object (apt.plugins.model_pruning.v1.PruneResult)"),
    ({"recovery_loss_last": None, "model": 3}, "model is int 3, the field is string"),  # None, then the next key
    ({"sparsity_by_layer": [1]}, "sparsity_by_layer is a list, not a map"),
    ({"sparsity_by_layer": {1: {"sparsity": 0.5}}}, "sparsity_by_layer[1] (key) is int 1, the field is string"),
])
def test_a_refusal_is_the_whole_sentence_naming_the_key(result, message):
    """The strict check's sentences as a service's log shows them: the key's path from the top
    (no leading dot), every key checked after one left unset, map keys checked as keys."""
    with pytest.raises(results.ResultMismatch) as err:
        results.to_message(pruning_pb2.PruneResult, result)
    assert str(err.value) == message


def test_a_well_known_type_inside_a_result_is_left_to_json_format():
    """Struct rows (a dataset preview) hold whatever columns the data has, a column named like a
    Struct's own field too: neither the strict check nor the JSON view looks inside them."""
    from apt_model.gen.apt.plugins.huggingface_integration.v1 import huggingface_pb2

    rows = [{"fields": 1, "text": "a"}, {"values": "x"}]
    typed = results.to_message(huggingface_pb2.LoadDatasetResult, {"preview": rows})
    assert results.json_view(typed)["preview"] == rows


def test_an_old_result_with_a_key_its_message_dropped_still_reads():
    old = _old_job(PRUNE, {"model": "m", "a_key_removed_since": 1})
    assert results.typed_result(old).model == "m"
    with pytest.raises(ValueError) as err:  # the parser's own reason, naming the field, is in the sentence
        results.typed_result(_old_job("/apt.gateway.v1.Core/StartTrain", {"model": "m", "loss_curve": [[1, 5.0]]}))
    assert "(Failed to parse loss_curve field" in str(err.value)


def _job_service(result_types: dict[str, str]):
    """A service built here whose methods return Jobs, each declaring the given result_type
    ("" = none), in a contract file of its own."""
    from google.protobuf import descriptor_pb2, descriptor_pool

    from apt_model.gen.apt.options.v1 import options_pb2

    name = "apt_test/jobs_" + "_".join(result_types) + ".proto"
    f = descriptor_pb2.FileDescriptorProto(name=name, package="apt_test.jobs", syntax="proto3",
                                           dependency=[job_pb2.DESCRIPTOR.name, options_pb2.DESCRIPTOR.name])
    f.message_type.add(name="Req")
    service = f.service.add(name="S" + "".join(result_types))
    for method, result_type in result_types.items():
        m = service.method.add(name=method, input_type=".apt_test.jobs.Req", output_type=f".{results.JOB}")
        if result_type:
            m.options.Extensions[options_pb2.result_type] = result_type
    pool = descriptor_pool.Default()
    try:
        return pool.FindServiceByName(f"apt_test.jobs.{service.name}")
    except KeyError:
        pool.AddSerializedFile(f.SerializeToString())
        return pool.FindServiceByName(f"apt_test.jobs.{service.name}")


def test_a_contract_without_a_usable_result_type_is_told_what_to_write():
    service = _job_service({"StartNone": "", "StartTypo": "apt_test.jobs.Nope", "StartFine": PRUNE_RESULT})
    start_none, start_typo, start_fine = (service.methods_by_name[n] for n in ("StartNone", "StartTypo", "StartFine"))
    where = f"{service.file.name}: rpc"
    with pytest.raises(LookupError) as err:
        results.declared_type(start_none)
    assert str(err.value) == ("apt_test.jobs.SStartNoneStartTypoStartFine.StartNone returns a Job but declares no "
                              "result message; add 'option (apt.options.v1.result_type) = \"<package>.<Message>\";' "
                              f"to {where} StartNone.")
    with pytest.raises(LookupError) as err:
        results.declared_type(start_typo)
    assert str(err.value) == ("apt_test.jobs.SStartNoneStartTypoStartFine.StartTypo declares result_type "
                              "'apt_test.jobs.Nope', which is not a message known to the contracts; fix the name in "
                              f"{where} StartTypo (the full name, package included).")
    assert results.declared_type(start_fine).full_name == PRUNE_RESULT
