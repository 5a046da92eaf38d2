"""Every request field that names a host path, an output folder or an endpoint is attacked.

The fields are found in the descriptors (gateway Core and every available plugin's service),
by name, so a new field such as `foo_path` or `report_url` fails this test until an attack
test covers it — a field is never trusted because nobody remembered to test it. A plugin that
is not built yet (plugin.yaml `available: false`, refused by `plugin install`) joins the check
the day it becomes available.
"""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import yaml
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FieldDescriptor

import apt_model.gen.apt.gateway.v1.gateway_pb2  # noqa: F401 - registers the descriptors
from gateway.router import load_plugin_descriptors

from . import test_endpoints, test_paths

ROOT = Path(__file__).resolve().parents[2]
# names that say "a place": on the host, in the store's exports, or on the network
PLACE = re.compile(r"(^|_)(path|paths|dir|folder|source|destination|url|endpoint|endpoint_url|region|file)$")

# Attacked in other files, by a test that names them.
ATTACKED_ELSEWHERE = {
    "Core.UploadModel.header.files.path": "test_upload_paths.py (header and chunk paths)",
    "Core.UploadModel.chunk.path": "test_upload_paths.py",
    "Core.UploadDataset.header.files.path": "test_upload_paths.py",
    "Core.UploadDataset.chunk.path": "test_upload_paths.py",
    "CloudStorage.StartBackup.region": "test_endpoints.py::test_a_region_cannot_steer_the_endpoint (one parser)",
    "CloudStorage.StartUpload.region": "same transfer_options() as ListBackups",
    "CloudStorage.StartRestore.region": "same transfer_options() as ListBackups",
    "CloudStorage.ListBackups.region": "test_endpoints.py::test_a_region_cannot_steer_the_endpoint",
    # the new plugins' fields, attacked in their own test folders
    "DataProcessors.StartProcess.paths": "services/data-processors/tests/test_bad_input.py::test_a_path_outside_the_data_roots_is_refused (and ...link_out_of_it_is_refused)",
    "Multimodal.StartCreateDataset.manifest_path": "services/multimodal-training/tests/test_dataset.py::test_a_manifest_outside_the_data_roots_is_permission_denied",
    "Debugging.StartGradientFlow.data_path": "services/advanced-debugging/tests/test_service.py::test_a_path_outside_the_data_roots_is_permission_denied",
    "Debugging.StartAnomalyDetection.metrics_path": "services/advanced-debugging/tests/test_service.py::test_a_path_outside_the_data_roots_is_permission_denied",
    "Debugging.StartGradientFlow.metrics_path": "the same AnalysisRequest, resolved by one function for every method",
    "Debugging.StartActivationAnalysis.data_path": "the same AnalysisRequest, resolved by one function for every method",
    "Debugging.StartActivationAnalysis.metrics_path": "the same AnalysisRequest, resolved by one function for every method",
    "Debugging.StartAnomalyDetection.data_path": "the same AnalysisRequest, resolved by one function for every method",
    "Debugging.StartProfile.data_path": "the same AnalysisRequest, resolved by one function for every method",
    "Debugging.StartProfile.metrics_path": "the same AnalysisRequest, resolved by one function for every method",
    "Debugging.ExportToTracker.metrics_path": "services/advanced-debugging/tests/test_service.py::test_export_metrics_path_outside_the_roots_is_permission_denied",
    "Debugging.ExportToTracker.log_dir": "services/advanced-debugging/tests/test_service.py (bad-input table: any log_dir is refused, outputs are datasets)",
    "Visualization.StartComparisonReport.eval_path": "services/advanced-visualization/tests/test_service.py (bad-input table: /etc/passwd is PERMISSION_DENIED)",
    "Visualization.StartDashboard.output_path": "services/advanced-visualization/tests/test_service.py (bad-input table: deprecated, any value refused)",
    "Visualization.StartComparisonReport.output_path": "deprecated, refused by the same check as StartDashboard's",
    "Visualization.StartAttentionMap.output_path": "deprecated, refused by the same check as StartDashboard's",
}
# Not a place the service reads, writes or calls — why, for each.
NOT_A_PLACE = {
    "OllamaExport.CreateModelfile.gguf_path": "only the text of the Modelfile's FROM line; nothing is opened",
}


def _available_services() -> set[str]:
    names = {"apt.gateway.v1.Core"}
    for manifest in (ROOT / "services").glob("*/plugin.yaml"):
        spec = yaml.safe_load(manifest.read_text())
        if spec.get("available", True):
            names.update(spec["services"])
    return names


def _fields(message, prefix: str, depth: int = 0):
    """Dotted names of the string fields of ``message`` (into nested messages, not into maps)."""
    for f in message.fields:
        name = f"{prefix}.{f.name}"
        if f.type == FieldDescriptor.TYPE_STRING:
            yield name, f.name
        elif f.type == FieldDescriptor.TYPE_MESSAGE and depth < 3 and not f.message_type.GetOptions().map_entry:
            yield from _fields(f.message_type, name, depth + 1)


def place_fields() -> set[str]:
    load_plugin_descriptors()
    pool = descriptor_pool.Default()
    found = set()
    for full in _available_services():
        service = pool.FindServiceByName(full)
        for method in service.methods:
            for dotted, short in _fields(method.input_type, f"{service.name}.{method.name}"):
                if PLACE.search(short):
                    found.add(dotted)
    return found


def test_every_place_field_is_attacked():
    unused = grpc.insecure_channel("127.0.0.1:1")  # stubs need a channel; no call is made
    attacked = set(test_paths._read_fields(unused)) | set(test_paths._write_fields(unused, "/x"))
    attacked |= set(test_endpoints._caller_endpoint_calls(unused, "http://x"))
    unused.close()
    covered = attacked | set(ATTACKED_ELSEWHERE) | set(NOT_A_PLACE)
    fields = place_fields()
    assert fields, "no field found: the descriptor walk is broken"
    missing = sorted(fields - covered)
    assert not missing, f"request fields naming a place with no attack test: {missing}"
    stale = sorted((set(ATTACKED_ELSEWHERE) | set(NOT_A_PLACE)) - fields)
    assert not stale, f"listed as attacked but no such field: {stale}"
