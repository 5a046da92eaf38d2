"""The proto is the one source of a plugin's operations (issue 16).

Describe, the generic CLI's flags and their help are derived from the descriptors
(apt_model.runtime.contract); plugin.yaml no longer lists operations. These tests hold the
proto itself to what the derived artefacts need: every operation and every request field of an
available plugin has help, every default names itself, and the comments travel with the
generated code (a stale ``.binpb`` would give help of an older contract).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from google.protobuf import descriptor_pb2, descriptor_pool

import apt_model.gen.apt.gateway.v1.gateway_pb2  # noqa: F401 - registers the shared descriptors
from apt_model import errors
from apt_model.runtime import contract
from apt_model.runtime.manifest import PluginManifest
from gateway.router import load_plugin_descriptors

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "services").glob("*/plugin.yaml")) + [ROOT / "tests/plugins/echo/plugin.yaml"]
AVAILABLE = [m for m in MANIFESTS if yaml.safe_load(m.read_text()).get("available")]


def _services(manifest: Path) -> list[str]:
    load_plugin_descriptors()
    return yaml.safe_load(manifest.read_text())["services"]


@pytest.mark.parametrize("manifest", AVAILABLE, ids=lambda p: p.parent.name)
def test_every_operation_and_argument_of_an_available_plugin_has_help(manifest):
    missing = []
    for op in contract.operations(_services(manifest)):
        missing += [op.name] * (not op.description)
        missing += [f"{op.name}.{a.name}" for a in op.arguments if not a.description]
    assert not missing, f"{manifest.parent.name}: no comment in the .proto for {missing}"


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.parent.name)
def test_operations_are_exactly_the_service_methods(manifest):
    services = _services(manifest)
    ops = contract.operations(services)
    methods = [m for s in services for m in descriptor_pool.Default().FindServiceByName(s).methods]
    assert [o.name for o in ops] == [m.name for m in methods]
    for op, method in zip(ops, methods):
        assert [a.name for a in op.arguments] == [f.name for f in method.input_type.fields]
        assert op.long_running == (method.output_type.full_name == "apt.common.v1.Job")


def test_rules_and_help_come_from_the_proto():
    load_plugin_descriptors()
    (prune,) = [o for o in contract.operations(["apt.plugins.model_pruning.v1.Pruning"]) if o.name == "StartPrune"]
    args = {a.name: a for a in prune.arguments}
    assert prune.long_running and prune.request_type == "apt.plugins.model_pruning.v1.PruneRequest"
    assert prune.result_type == "apt.plugins.model_pruning.v1.PruneResult"
    assert args["ratio"].required and args["ratio"].rules.greater_than == 0 and args["ratio"].rules.less_than == 1
    assert args["scope"].choices == ["global", "layer"] and args["scope"].default_value == "global"
    # a comment over two lines is one help text
    assert args["prune_hidden"].description.endswith("projections and LM head")
    (distill,) = contract.operations(["apt.plugins.model_distillation.v1.Distillation"])
    kinds = {a.name: (a.type, a.repeated) for a in distill.arguments}
    assert kinds["strategies"] == ("string", True) and kinds["layer_map"] == ("map", False)
    assert kinds["temperature"] == ("float", False) and kinds["max_steps"] == ("int", False)


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.parent.name)
def test_a_local_files_field_names_a_dataset_field_of_its_request(manifest):
    """``local_files_dataset`` is where the generic CLI puts the dataset it pushed: a string
    field of the same request that is not itself a path field."""
    for op in contract.operations(_services(manifest)):
        args = {a.name: a for a in op.arguments}
        for a in op.arguments:
            twin = a.rules.local_files_dataset
            if not twin:
                continue
            assert a.type == "string", f"{op.name}.{a.name}: local_files_dataset on a {a.type} field"
            assert twin in args, f"{op.name}.{a.name}: local_files_dataset names {twin!r}, not a field of the request"
            assert args[twin].type == "string" and not args[twin].repeated, f"{op.name}.{twin}: not one string"
            assert not args[twin].rules.local_files_dataset, f"{op.name}.{twin}: a path field as the twin"


def test_the_comment_files_are_those_of_the_generated_modules():
    """Each ``.binpb`` holds the same file as its ``_pb2`` module, comments aside: make proto
    writes both, and a hand edit or a stale copy would make the help lie."""
    for binpb in sorted((ROOT / "apt_model/gen").rglob("*.binpb")):
        (with_comments,) = descriptor_pb2.FileDescriptorSet.FromString(binpb.read_bytes()).file
        assert with_comments.source_code_info.location, f"{binpb}: compiled without --include_source_info"
        compiled = descriptor_pb2.FileDescriptorProto()
        load_plugin_descriptors()
        descriptor_pool.Default().FindFileByName(with_comments.name).CopyToProto(compiled)
        with_comments.ClearField("source_code_info")
        _clear_json_names(with_comments.message_type)  # the Python plugin leaves them out
        for ext in with_comments.extension:
            ext.ClearField("json_name")
        assert with_comments == compiled, f"{binpb} differs from its generated module: run make proto"


def _clear_json_names(messages) -> None:
    for m in messages:
        for f in m.field:
            f.ClearField("json_name")
        _clear_json_names(m.nested_type)


def test_descriptor_set_builds_requests_without_generated_code():
    """What Describe ships lets a client with no generated module build and encode a request."""
    from google.protobuf import message_factory

    load_plugin_descriptors()
    pool = descriptor_pool.DescriptorPool()
    for f in contract.descriptor_set(["apt.plugins.model_pruning.v1.Pruning"]).file:
        pool.Add(f)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("apt.plugins.model_pruning.v1.PruneRequest"))
    from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2

    wire = cls(name="base", ratio=0.5).SerializeToString()
    assert pruning_pb2.PruneRequest.FromString(wire) == pruning_pb2.PruneRequest(name="base", ratio=0.5)


def test_a_manifest_listing_operations_is_refused(tmp_path):
    folder = tmp_path / "old-style"
    folder.mkdir()
    (folder / "plugin.yaml").write_text("name: old-style\noperations: [{name: StartX}]\n")
    with pytest.raises(errors.FailedPrecondition, match="come from its proto"):
        PluginManifest.load(folder)


EXTERNAL_PROTO = '''syntax = "proto3";
package extplug.v1;

message Outer {
  // A message declared inside another.
  message Inner {
    // how deep the inner thing goes
    int32 depth = 1;
  }
  // how many
  int32 count = 1;
  Inner inner = 2;
  string bare = 3;
  Shade shade = 4;
}

enum Shade {
  SHADE_UNSPECIFIED = 0;
  SHADE_DARK = 1;
}

message Second {
  message A {}
  message B {
    // the b field
    int32 b = 1;
  }
}

service Ext {
  // Does a thing.
  rpc Do(Outer) returns (Outer);
  rpc Bare(Outer) returns (Outer);
}
'''


@pytest.fixture(scope="module")
def external_module(tmp_path_factory):
    """A plugin's contract generated outside this package, as `make proto` lays it out (module and
    ``.binpb`` under the proto's path), compiled here with protoc and imported."""
    import importlib
    import sys

    from grpc_tools import protoc

    name = "extplug.v1.ext_pb2"
    if name not in sys.modules:
        root = tmp_path_factory.mktemp("external-gen")
        (root / "extplug" / "v1").mkdir(parents=True)
        (root / "extplug" / "v1" / "ext.proto").write_text(EXTERNAL_PROTO)
        code = protoc.main(["protoc", f"-I{root}", f"--python_out={root}", "--include_source_info",
                            f"--descriptor_set_out={root / 'extplug' / 'v1' / 'ext.binpb'}", "extplug/v1/ext.proto"])
        assert code == 0
        sys.path.insert(0, str(root))
    return importlib.import_module(name)


def test_help_comes_from_the_comments_of_a_contract_generated_outside_this_package(external_module):
    """The .binpb is found beside a generated module anywhere on the path (a plugin written
    outside this repository), and nested messages' fields get their own comments."""
    outer, second = external_module.Outer.DESCRIPTOR, external_module.Second.DESCRIPTOR
    help_of = {f"{fd.containing_type.name}.{fd.name}": contract.field_help(fd)
               for fd in (*outer.fields, *outer.nested_types_by_name["Inner"].fields,
                          *second.nested_types_by_name["B"].fields)}
    assert help_of == {"Outer.count": "how many", "Outer.inner": "", "Outer.bare": "", "Outer.shade": "",
                       "Inner.depth": "how deep the inner thing goes", "B.b": "the b field"}
    do, bare = (external_module.DESCRIPTOR.services_by_name["Ext"].methods_by_name[n] for n in ("Do", "Bare"))
    assert (contract.method_help(do), contract.method_help(bare)) == ("Does a thing.", "")
    # an enum field offers its values as the choices, when no rule lists them
    assert list(contract.argument(outer.fields_by_name["shade"]).choices) == ["SHADE_UNSPECIFIED", "SHADE_DARK"]


def test_an_operation_describes_its_method_whole():
    """What a client reads to call a method it has no generated code for: the types, the
    service, the streaming flags, and a result type only where jobs start."""
    load_plugin_descriptors()
    ops = {o.name: o for o in contract.operations(["apt.gateway.v1.Core"])}
    upload, download, info = ops["UploadModel"], ops["DownloadModel"], ops["GetModelInfo"]
    assert (upload.client_streaming, upload.server_streaming) == (True, False)
    assert (download.client_streaming, download.server_streaming) == (False, True)
    assert (info.client_streaming, info.server_streaming, info.long_running) == (False, False, False)
    assert (info.request_type, info.response_type, info.service, info.result_type) == (
        "apt.gateway.v1.GetModelInfoRequest", "apt.gateway.v1.ModelInfo", "apt.gateway.v1.Core", "")
    assert ops["StartTrain"].result_type == "apt.gateway.v1.TrainResult"


def test_an_unloaded_service_says_what_to_import():
    with pytest.raises(errors.FailedPrecondition) as err:
        contract.service("apt.nowhere.v1.Missing")
    assert err.value.message == ("The proto service apt.nowhere.v1.Missing is not loaded: import its generated "
                                 "*_pb2 module first.")


def test_a_descriptor_set_holds_each_file_once_dependencies_first():
    load_plugin_descriptors()
    names = [f.name for f in contract.descriptor_set(["apt.gateway.v1.Core", "apt.plugin.v1.Jobs"]).file]
    assert len(names) == len(set(names)) and names.index("apt/common/v1/job.proto") < names.index(
        "apt/gateway/v1/gateway.proto")
