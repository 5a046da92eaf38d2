"""Mutation testing (issue #17): mutmut over the modules whose rules matter most, one target at a time.

Run by `make mutate` (never by `make test` or CI: it takes minutes to hours on a 2-core machine).

    make mutate                            # every target in TARGETS
    make mutate MUTATE="gateway-jobs prune-spec"
    .venv/bin/python tools/mutate.py --list

Why not plain `mutmut run` in the repository: mutmut 3 forks one worker per mutant. Forked from a
process in which gRPC already runs threads, workers die with SIGSEGV or hang, and a dead worker
once counted as a "killed" mutant. Here every verdict must come from a test failing:

* mutmut's ``forkserver`` isolation: the process that forks the workers never runs a test. It
  only collects them (``forkserver_warmup = collect``) when that leaves it with one OS thread;
  the preflight below measures that, and says so loudly when it falls back to ``none``.
* A kill is a test that fails. mutmut's exit 1 (a test failed) is sampled (``--audit``, all with
  ``--audit -1``) and run again in a fresh interpreter with the mutant switched on by
  ``MUTANT_UNDER_TEST``: it must fail there too, and the failing test is named in the report.
  Every other non-zero exit (a signal, pytest's 2 or 3, which mutmut counts as a kill) is run
  again the same way and counts as a kill only when a test fails; else it stays a crash.
  Timeouts are counted apart. None of those raises the kill rate.
* After the run the unmutated tests run once more: an environment that broke on the way (the
  shared .venv reinstalled mid-run, seen) makes the run void, loudly.

Each target runs in its own copy of the working tree, ``build/mutate/<target>/`` (mutmut writes
its ``mutants/`` folder there), so a run never touches the files other people edit. A plugin's
package is moved to the top of that copy: mutmut names a mutant by the file's path, and that
path must be the module's import name (``apt_prune/spec.py`` is ``apt_prune.spec``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutate"
TEST_TIMEOUT = 90  # seconds per test in a mutation run (the slowest selected test takes ~30 s)


@dataclass(frozen=True)
class Target:
    name: str                 # what `make mutate MUTATE=...` names
    package: str              # repository folder of the package that holds the modules
    modules: tuple[str, ...]  # files mutated, relative to the repository root
    tests: tuple[str, ...]    # the tests that exercise them (pytest paths or node ids)

    @property
    def top(self) -> str:
        """The package's import name: its folder in the work copy's root."""
        return Path(self.package).name


PRUNE = "services/model-pruning"
DISTILL = "services/model-distillation"
STORAGE = "services/cloud-storage"
HF = "services/huggingface-integration"
OLLAMA = "services/ollama-export"
MULTIMODAL = "services/multimodal-training"
DATA = "services/data-processors"
VIZ = "services/advanced-visualization"
REASON = "services/reasoning-training"
DEBUG = "services/advanced-debugging"
RUNTIME = "apt_model/runtime"

# Per target, only the tests that exercise its modules: mutmut runs, per mutant, the subset of
# these that called the mutated function, but it collects that map by running all of them once.
TARGETS = (
    # the echo plugin's quick jobs; test_plugin_jobs' two pruning runs are left out (~20 s per
    # mutant on 2 cores): the echo tests cover the same paths
    Target("gateway-jobs", "gateway", ("gateway/jobs.py",), (
        *(f"tests/platform/test_plugin_jobs.py::{t}" for t in (
            "test_list_jobs_merges_the_gateways_and_each_plugins_jobs_newest_first",
            "test_jobs_are_routed_by_their_id_and_a_bad_id_says_what_is_wrong",
            "test_a_job_is_found_on_whichever_replica_holds_it",
            "test_a_replica_that_stopped_answering_is_marked_unhealthy_at_once_and_skipped",
            "test_a_watch_through_the_gateway_ends_unavailable_when_the_plugin_dies",
            "test_a_watcher_of_a_quiet_gateway_job_gets_each_snapshot_once",
            "test_a_replica_that_accepts_and_never_answers_holds_no_job_call_past_the_deadline",
            "test_a_service_filter_skips_the_plugins_before_the_one_it_names")),
        "tests/platform/test_job_results.py",
        "tests/core/test_gateway_core.py",
        "tests/core/test_in_use.py",
        "tests/platform/test_limits.py",
        "tests/security/test_stalls.py",
    )),
    # installs, restarts, health and replicas with the echo plugin as a real child process (the
    # gateway runs in the test's process, so its registry is the mutated one)
    Target("gateway-registry", "gateway", ("gateway/registry.py",), (
        "tests/platform/test_registry_units.py",
        "tests/platform/test_registry.py",
        "tests/platform/test_plugin_settings.py",
        "tests/platform/test_plugin_jobs.py::test_a_job_is_found_on_whichever_replica_holds_it",
        "tests/platform/test_plugin_jobs.py::test_a_replica_that_stopped_answering_is_marked_unhealthy_at_once_and_skipped",
        # the Python router picks a replica with Installed.next_endpoint (apt-router has its own)
        "tests/platform/test_router.py::test_replicas_are_balanced_round_robin",
    )),
    # the spec's rules, plus one real job of each kind that is quick on 2 cores (the 8-20 s
    # structured and Taylor runs would multiply into hours over ~200 mutants)
    Target("prune-spec", f"{PRUNE}/apt_prune", (f"{PRUNE}/apt_prune/spec.py",), (
        f"{PRUNE}/tests/test_service.py::test_bad_input_is_refused_on_the_start_call",
        f"{PRUNE}/tests/test_service.py::test_model_in_use_by_another_job_is_refused",
        f"{PRUNE}/tests/test_service.py::test_list_strategies_includes_registered_importance",
        f"{PRUNE}/tests/test_service.py::test_prune_job_end_to_end",
        f"{PRUNE}/tests/test_service.py::test_host_paths_are_resolved_field_by_field_and_a_bad_one_is_named",
        f"{PRUNE}/tests/test_service.py::test_each_refusal_of_the_spec_names_the_field_and_the_fix",
        f"{PRUNE}/tests/test_service.py::test_a_spec_fills_the_documented_defaults_and_keeps_what_was_given",
        f"{PRUNE}/tests/test_unstructured.py::test_taylor_without_text_is_refused",
        f"{PRUNE}/tests/test_unstructured.py::test_missing_or_misplaced_text_is_refused_saying_what_to_give",
        f"{PRUNE}/tests/test_unstructured.py::test_each_source_of_text_is_enough_where_it_is_used",
        f"{PRUNE}/tests/test_unstructured.py::test_lottery_rewinds_surviving_weights_to_the_early_checkpoint",
        f"{PRUNE}/tests/test_width.py::test_bad_hidden_ratio_is_refused",
        f"{PRUNE}/tests/test_width.py::test_parts_named_explicitly_are_the_only_ones_pruned",
        f"{PRUNE}/tests/test_width.py::test_default_width_is_what_reaches_the_ratio_and_none_when_heads_and_mlp_suffice",
        f"{PRUNE}/tests/test_width.py::test_hidden_ratio_rounding_is_reported_and_extremes_refused",
        f"{PRUNE}/tests/test_structured.py::test_ratio_that_splits_a_head_group_is_rounded_and_shown",
        f"{PRUNE}/tests/test_structured.py::test_ratio_that_would_break_head_groups_is_refused",
    )),
    # the spec's unit tests (test_spec.py, test_losses.py) and the service's refusals
    Target("distill-spec", f"{DISTILL}/apt_distill", (f"{DISTILL}/apt_distill/spec.py",), (
        f"{DISTILL}/tests/test_losses.py",
        f"{DISTILL}/tests/test_spec.py",
        f"{DISTILL}/tests/test_service.py::test_bad_input_is_invalid_argument_on_the_start_call",
        f"{DISTILL}/tests/test_service.py::test_vocabulary_mismatch_is_failed_precondition_saying_what_differs",
        f"{DISTILL}/tests/test_service.py::test_unknown_teacher_is_not_found",
        f"{DISTILL}/tests/test_service.py::test_unregistered_custom_loss_is_invalid",
    )),
    # the one server interceptor: auth per method and call kind, error mapping, access log, on
    # real sync and asyncio servers in the test's process (the gateway's auth matrix through whole
    # gateways, tests/security/test_auth_matrix.py, would cost ~80 s of fixtures per mutant)
    Target("runtime-interceptors", "apt_model", (f"{RUNTIME}/interceptors.py",), (
        "tests/platform/test_interceptors.py",
    )),
    # settings from the environment and a plugin's declared settings: every parser, edge and sentence
    Target("runtime-settings", "apt_model", (f"{RUNTIME}/settings.py", f"{RUNTIME}/plugin_settings.py"), (
        "tests/platform/test_settings.py",
    )),
    # a training job's running log (the job id is the only input that names a path) and log lines
    Target("runtime-logs", "apt_model", (f"{RUNTIME}/joblog.py", f"{RUNTIME}/logs.py"), (
        "tests/platform/test_joblog.py",
        "tests/platform/test_logs.py",
    )),
    # reading plugin.yaml: names, deployment keys, quantities, requirements includes
    Target("runtime-manifest", "apt_model", (f"{RUNTIME}/manifest.py",), (
        "tests/platform/test_manifest.py",
        "tests/platform/test_plugin_deployment_keys.py",
    )),
    # the Kubeflow PyTorchJob runner: the manifest against the operator's schema, names, refusals, and
    # its follower against LocalKubeApiServer with a fake operator; the three tests that run real
    # torchrun pods (10-30 s each) are left out
    Target("runtime-pytorchjob", "apt_model", (f"{RUNTIME}/pytorchjob.py",), tuple(
        f"tests/deploy/test_pytorchjob.py::{t}" for t in (
            "test_the_manifest_validates_against_the_operators_schema",
            "test_the_schema_check_can_fail",
            "test_object_names_are_dns_labels",
            "test_other_deployers_refuse_nodes_with_what_it_needs",
            "test_a_cancelled_pytorchjob_that_ends_failed_before_the_ranks_files_appear_is_still_deleted",
            "test_a_pytorchjob_deleted_by_someone_else_fails_the_job",
            "test_a_service_that_does_not_know_its_image_submits_nothing"))),
    # one call starts a service: health, reflection, Describe, limits, TLS, bind errors, stop, entry point
    Target("runtime-app", "apt_model", (f"{RUNTIME}/app.py",), (
        "tests/platform/test_app.py",
    )),
    Target("runtime-validation", "apt_model", (f"{RUNTIME}/validation.py",), (
        "tests/platform/test_validation.py",
    )),
    Target("runtime-results", "apt_model", (f"{RUNTIME}/results.py",), (
        "tests/platform/test_job_results.py",
    )),
    Target("runtime-contract", "apt_model", (f"{RUNTIME}/contract.py",), (
        "tests/platform/test_plugin_manifests.py",
    )),
    Target("runtime-jobs", "apt_model", (f"{RUNTIME}/jobs.py", f"{RUNTIME}/jobs_grpc.py"), (
        "tests/platform/test_job_manager.py",
        "tests/platform/test_job_results.py",
        "tests/platform/test_plugin_jobs.py::test_list_jobs_merges_the_gateways_and_each_plugins_jobs_newest_first",
        "tests/platform/test_plugin_jobs.py::test_jobs_are_routed_by_their_id_and_a_bad_id_says_what_is_wrong",
        "tests/platform/test_limits.py",
        "tests/core/test_in_use.py",
        "tests/security/test_bounds.py",
        "tests/security/test_stalls.py",
    )),
    Target("store", "apt_model", tuple(f"apt_model/store/{m}.py" for m in ("api", "entry", "fs", "locks", "settle")), (
        "tests/core/test_store_files.py",
        "tests/core/test_atomicity.py",
        "tests/core/test_store_guards.py",
        "tests/core/test_settle.py",
        "tests/core/test_in_use.py",
        "tests/security/test_store_race.py",
    )),
    # cloud-storage's guards: destination URIs (schemes, bucket and repo names, '..'), transfer
    # options (endpoint, region, part size), tags and manifest paths; the local backend's jobs
    # and the service's bad-input answers
    Target("storage-spec", f"{STORAGE}/apt_storage",
           tuple(f"{STORAGE}/apt_storage/{m}.py" for m in ("uri", "specs", "layout")), (
        f"{STORAGE}/tests/test_specs.py",
        f"{STORAGE}/tests/test_local_and_uri.py",
        f"{STORAGE}/tests/test_grpc.py::test_bad_input_status_codes",
    )),
    # huggingface-integration's export and push: where an export may be written, the branch and
    # repo-id rules, the claim-then-rename that leaves nothing after a failure
    Target("hf-export", f"{HF}/apt_hf", (f"{HF}/apt_hf/exporter.py", f"{HF}/apt_hf/hubs.py"), (
        f"{HF}/tests/test_specs.py",
        f"{HF}/tests/test_export_push.py",
        f"{HF}/tests/test_service.py::test_bad_input_is_answered_on_the_start_call",
    )),
    # ollama-export's request rules (folder names, outtype, the Ollama URL against the allowed
    # endpoints, model names), the export's all-or-nothing files, the Ollama client's checks
    Target("ollama-spec", f"{OLLAMA}/apt_ollama",
           (f"{OLLAMA}/apt_ollama/export_job.py", f"{OLLAMA}/apt_ollama/ollama_client.py"), (
        f"{OLLAMA}/tests/test_specs.py",
        f"{OLLAMA}/tests/test_service.py::test_bad_requests_fail_the_call",
        f"{OLLAMA}/tests/test_service.py::test_cancel_during_verification_leaves_nothing",
        f"{OLLAMA}/tests/test_service.py::test_a_gguf_that_fails_verification_is_not_kept",
        f"{OLLAMA}/tests/test_ollama_client.py",
        # not test_cli_e2e: its gateway starts the plugin from services/ollama-export, which the
        # work copy moved (the stats pass failed on it); test_specs.py checks the URL rules
    )),
    # multimodal-training's dataset manifest: every row rule, and paths that leave the data folder
    Target("multimodal-manifest", f"{MULTIMODAL}/apt_multimodal", (f"{MULTIMODAL}/apt_multimodal/manifest.py",), (
        f"{MULTIMODAL}/tests/test_manifest.py",
    )),
    # data-processors' request rules: defaults, names, workers, cleaning strategy, lineage
    Target("data-spec", f"{DATA}/apt_data", (f"{DATA}/apt_data/spec.py",), (
        f"{DATA}/tests/test_spec.py",
    )),
    # advanced-visualization's shared guards: models that exist, outputs only as free datasets
    Target("viz-checks", f"{VIZ}/apt_viz", (f"{VIZ}/apt_viz/checks.py",), (
        f"{VIZ}/tests/test_checks.py",
    )),
    # reasoning-training's dataset rules: GenerateTasks' defaults and refusals, uncheckable rows
    Target("reasoning-data", f"{REASON}/apt_reason", (f"{REASON}/apt_reason/data.py",), (
        f"{REASON}/tests/test_data_rules.py",
    )),
    # advanced-debugging's series sources: exactly one, a job id checked before it names a path
    Target("debug-source", f"{DEBUG}/apt_debug", (f"{DEBUG}/apt_debug/source.py",), (
        f"{DEBUG}/tests/test_series_source.py",
    )),
)


def tree_files() -> list[str]:
    """The working tree as git sees it: tracked files plus untracked ones that are not ignored."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, check=True, capture_output=True).stdout
    return [p for p in out.decode().split("\0") if p and (ROOT / p).is_file()]


def make_workspace(target: Target, rev: str | None) -> Path:
    """A fresh copy of the working tree (or of commit ``rev``) with the target's package at the
    top, plus mutmut's config."""
    work = WORK / target.name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    if rev:
        archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    else:
        for rel in tree_files():
            dest = work / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest)
    # built outputs the tests run, which git does not carry: the gateway's apt-router
    router = Path("router/target/release/apt-router")
    if (ROOT / router).exists():
        (work / router).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / router, work / router)
    if target.package != target.top:
        # a plugin package: out of its plugin folder, so that the conftest's sys.path entry for
        # that folder cannot import the unmutated copy ahead of mutants/
        shutil.move(work / target.package, work / target.top)
    (work / "commit.txt").write_text(commit(rev) + "\n")  # what report() names
    (work / "sitecustomize.py").write_text(CHILD_STATS_OFF)
    only = [str(Path(target.top) / Path(m).relative_to(target.package)) for m in target.modules]
    also_copy = sorted(p.name for p in work.iterdir() if p.name != target.top)
    (work / "setup.cfg").write_text("\n".join([
        "[mutmut]",
        f"source_paths = {target.top}",
        "only_mutate =", *(f"    {m}" for m in only),
        "also_copy =", *(f"    {p}" for p in also_copy),
        "pytest_add_cli_args_test_selection =", *(f"    {t}" for t in target.tests),
        # mutmut times a test's call only, not its fixtures (a gateway, a plugin process): the
        # constant keeps a worker slowed by a busy machine from passing for a mutant's endless loop
        "timeout_constant = 10",
        # mutmut limits a worker's CPU time only: a mutant that deadlocks (waits on a lock for
        # good) spends none and held its worker for good (seen: two store workers blocked in flock
        # for minutes). pytest-timeout fails such a test instead; a hang is then a failing test.
        "pytest_add_cli_args =", f"    --timeout={TEST_TIMEOUT}",
        "process_isolation = forkserver",
        f"forkserver_warmup = {preflight_warmup(work, target)}",
        "use_git_change_detection = false",
        "",
    ]))
    return work


# Imported at start-up by every interpreter whose path has mutants/: the tests' own and the
# processes they start (a plugin the gateway runs imports the mutated apt_model too). mutmut's
# "stats" pass makes each mutated function record which test reached it, reading its settings
# from setup.cfg in the working directory; a child process runs elsewhere, the read fails, and
# the function raises (seen: the echo plugin's Health/Check INTERNAL, the stats pass void). Such
# a process calls the original functions instead: its hits could not reach mutmut anyway. Mutant
# runs are unaffected, so a mutant is switched on in the children too.
CHILD_STATS_OFF = """import os
if os.environ.get("MUTANT_UNDER_TEST") == "stats" and not os.path.isfile("setup.cfg"):
    os.environ["MUTANT_UNDER_TEST"] = ""
"""


THREADS_AFTER_COLLECT = """
import os, sys, pytest
code = pytest.main(["--rootdir=.", "--collect-only", "-qqq", *sys.argv[1:]])
print("threads", len(os.listdir("/proc/self/task")), "exit", int(code))
"""


def preflight_warmup(work: Path, target: Target) -> str:
    """``collect`` when collecting the target's tests leaves one OS thread (forking is then safe);
    ``none`` otherwise: every worker then imports and collects for itself, which is slower."""
    proc = subprocess.run([sys.executable, "-c", THREADS_AFTER_COLLECT, *target.tests], cwd=work,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(work)})
    last = proc.stdout.strip().splitlines()[-1:] or [""]
    words = last[0].split()
    if words[:1] != ["threads"] or words[3] != "0":
        sys.exit(f"{target.name}: collecting its tests failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    if words[1] == "1":
        return "collect"
    print(f"!! {target.name}: collecting its tests leaves {words[1]} OS threads; forking from that process "
          "is unsafe, so every mutant's worker starts from a bare fork server (forkserver_warmup = none, "
          "slower)", flush=True)
    return "none"


# mutmut's exit codes, as this report counts them: only 1 (a test failed) is a kill.
SIGXCPU = 24  # mutmut's wall and CPU timeouts both end a worker with SIGXCPU


def verdict(code: int | None) -> str:
    if code == 1:
        return "killed"
    if code == 0:
        return "survived"
    if code == 33:
        return "no tests"
    if code is None:
        return "not run"
    if code in (SIGXCPU, -SIGXCPU, 128 + SIGXCPU):
        return "timeout"
    return "crash"  # a signal, a pytest internal error (3), an interrupted run (2), ...


def results(work: Path) -> dict[str, dict[str, int | None]]:
    """Exit code per mutant, per mutated file (repository-relative name of the file)."""
    out = {}
    for meta in sorted((work / "mutants").rglob("*.py.meta")):
        rel = meta.relative_to(work / "mutants").with_suffix("")
        out[str(rel)] = json.loads(meta.read_text())["exit_code_by_key"]
    return out


def tests_of(work: Path, mutant: str) -> list[str]:
    stats = json.loads((work / "mutants" / "mutmut-stats.json").read_text())
    return sorted(stats["tests_by_mangled_function_name"].get(mutant.partition("__mutmut_")[0], []))


def rerun(work: Path, mutant: str, tests: list[str]) -> tuple[int, bool, str]:
    """Run tests in a fresh interpreter with ``mutant`` switched on ("" = none): (exit code, a test
    failed, the evidence). A failing test is the evidence, whatever the exit code: the root
    conftest ends a run with 3 when threads outlive the tests, which a failed gateway test leaves."""
    env = {**os.environ, "MUTANT_UNDER_TEST": mutant, "PYTHONPATH": str(work / "mutants")}
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "--rootdir=.", "-x", "-q", "-p", "no:randomly",
                               "--tb=line", f"--timeout={TEST_TIMEOUT}", *tests],
                              cwd=work / "mutants", capture_output=True, text=True, env=env, timeout=900)
    except subprocess.TimeoutExpired:
        return -1, False, "no verdict within 900 s"
    # pytest's summary lines ("FAILED tests/x.py::test - ..."), not captured log lines ("ERROR    logger:...")
    failed = [line for line in proc.stdout.splitlines() if re.match(r"(FAILED|ERROR) [^ ]+\.py(::| |$)", line)]
    if failed:
        return proc.returncode, True, failed[0]
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    return proc.returncode, False, f"exit {proc.returncode}: " + " / ".join(tail)


def show(work: Path, mutant: str) -> str:
    mutmut = Path(sys.executable).with_name("mutmut")
    return subprocess.run([str(mutmut), "show", mutant], cwd=work, capture_output=True, text=True).stdout


def report(target: Target, work: Path, audit_n: int, seed: int) -> dict:
    """Count the verdicts. A kill (exit 1) is sampled and re-run in a fresh interpreter; every
    other non-zero exit (a signal, pytest's 2 or 3) is re-run there too and becomes a kill only
    when a test fails. Last, the unmutated tests must still pass: a run whose environment broke
    on the way (seen: the shared .venv reinstalled mid-run) says so instead of counting."""
    clean_exit, _, clean_why = rerun(work, "", list(target.tests))
    if clean_exit != 0:
        print(f"!! {target.name}: the unmutated tests fail now ({clean_why}); the environment changed during "
              "the run, so its crashes and kills are not evidence. Run it again.", flush=True)
    by_file = results(work)
    rows, lines = [], [f"# {target.name}: every mutant that is not a confirmed kill\n"]
    for path, codes in by_file.items():
        verdicts = {m: verdict(c) for m, c in codes.items()}
        killed = [m for m, v in verdicts.items() if v == "killed"]
        picked = killed if audit_n < 0 else random.Random(seed).sample(killed, min(audit_n, len(killed)))
        evidence = {}
        for m in picked + [m for m, v in verdicts.items() if v == "crash"]:
            _, failed, evidence[m] = rerun(work, m, tests_of(work, m))
            if verdicts[m] == "killed" and not failed:
                verdicts[m] = "unconfirmed"  # an unconfirmed kill is not a kill
            elif verdicts[m] == "crash" and failed:
                verdicts[m] = "killed"
        counts = {v: 0 for v in ("killed", "survived", "timeout", "crash", "unconfirmed", "no tests", "not run")}
        for v in verdicts.values():
            counts[v] += 1
        total = len(codes)
        # the repository's path: a plugin package was moved to the top of the work copy
        repo_path = str(Path(target.package).parent / path) if target.package != target.top else path
        rows.append(dict(file=repo_path, mutants=total, **counts, audited=len(picked),
                         kill_rate=round(100 * counts["killed"] / total, 1) if total else None,
                         evidence=evidence))
        for m, v in sorted(verdicts.items()):
            if v != "killed":
                why = f"{v} (exit {codes[m]})" + (f": {evidence[m]}" if m in evidence else "")
                lines += [f"## {m}: {why}\n", "```diff", show(work, m).strip(), "```\n"]
    (work / "survivors.md").write_text("\n".join(lines))
    summary = dict(target=target.name, date=str(date.today()), commit=(work / "commit.txt").read_text().strip(),
                   cpus=os.cpu_count(), clean_after=clean_exit == 0, files=rows)
    (work / "report.json").write_text(json.dumps(summary, indent=2))
    return summary


def commit(rev: str | None) -> str:
    """What was tested: the commit, marked when it was the working tree and that differed from HEAD."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev or "HEAD"], cwd=ROOT, capture_output=True,
                         text=True).stdout.strip()
    if rev:
        return sha
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return sha + ("+uncommitted" if dirty else "")


def print_table(summaries: list[dict]) -> None:
    print("| module | commit | mutants | killed | survived | timeout | crash | no tests | kill rate "
          "| kills re-run (unconfirmed) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s in summaries:
        for r in s["files"]:
            print(f"| {r['file']} | {s['commit']} | {r['mutants']} | {r['killed']} | {r['survived']} "
                  f"| {r['timeout']} | {r['crash']} | {r['no tests']} | {r['kill_rate']}% "
                  f"| {r['audited']} ({r['unconfirmed']}) |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=(
        "examples:\n  tools/mutate.py gateway-jobs --max-children 2\n  tools/mutate.py prune-spec --audit -1\n"
        "  tools/mutate.py gateway-jobs --report-only"), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help="target names (default: all); see --list")
    parser.add_argument("--list", action="store_true", help="print the targets and their tests, then exit")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--audit", type=int, default=10,
                        help="killed mutants per file re-run in a fresh interpreter (-1: all; default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the audit sample")
    parser.add_argument("--commit", metavar="REV",
                        help="test this commit (git archive) instead of the working tree, e.g. HEAD")
    parser.add_argument("--resume", action="store_true",
                        help="keep build/mutate/<target> and test only the mutants without a verdict")
    parser.add_argument("--report-only", action="store_true", help="recount an earlier run, test nothing")
    parser.add_argument("--only", nargs="+", metavar="PATTERN",
                        help="test only the mutants whose names match (fnmatch, e.g. 'apt_hf.exporter.x_run_push__*'); "
                             "the others count as not run")
    parser.add_argument("--tests", nargs="+", metavar="TEST",
                        help="run against these tests instead of the target's selection: a quick pass with its "
                             "unit tests, whose survivors are then re-run with the whole selection")
    args = parser.parse_args(argv)

    by_name = {t.name: t for t in TARGETS}
    if args.list:
        for t in TARGETS:
            print(f"{t.name}: {', '.join(t.modules)}\n    tests: {' '.join(t.tests)}")
        return 0
    unknown = [n for n in args.targets if n not in by_name]
    if unknown:
        parser.error(f"unknown target(s) {unknown}; known: {', '.join(by_name)}")
    mutmut = Path(sys.executable).with_name("mutmut")
    if not mutmut.exists():
        sys.exit(f"{mutmut} is missing: run 'make mutate' (it installs tools/mutate-requirements.txt) "
                 f"or '{sys.executable} -m pip install -r tools/mutate-requirements.txt'.")

    summaries = []
    for target in [by_name[n] for n in args.targets] or list(TARGETS):
        if args.tests:
            target = dataclasses.replace(target, tests=tuple(args.tests))
        work = WORK / target.name
        if not (args.resume or args.report_only) or not work.exists():
            if args.report_only:
                sys.exit(f"{target.name}: no earlier run in {work}; run it first.")
            work = make_workspace(target, args.commit)
        if not args.report_only:
            print(f"== {target.name}: mutmut in {work.relative_to(ROOT)}", flush=True)
            run = subprocess.run([str(mutmut), "run", "--max-children", str(args.max_children), *(args.only or ())],
                                 cwd=work)
            if run.returncode != 0:
                print(f"!! {target.name}: mutmut exited {run.returncode}; the counts below are partial", flush=True)
        summaries.append(report(target, work, args.audit, args.seed))
        print(f"   {target.name}: survivors in {(work / 'survivors.md').relative_to(ROOT)}", flush=True)
    print_table(summaries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
