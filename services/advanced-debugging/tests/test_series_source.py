"""Which series a request names (apt_debug.source.SeriesSource), rule by rule: exactly one
source, a job id checked before any path is built from it, the default output name, the parent
recorded in lineage, and each source's missing case with its sentence."""

from __future__ import annotations

import pytest

from apt_model import errors
from apt_model.runtime import joblog
from apt_model.store import Store

from apt_debug.source import SeriesSource

ONE = ("Name exactly one series to read: a store model (--name), a metrics file or TensorBoard folder "
       "(--metrics-path), a store dataset (--metrics-dataset) or a training job (--job-id); got {}.")


@pytest.mark.parametrize("given", [("", "", "", ""), ("m", "/p.csv", "", ""), ("m", "", "d", "svc:1"),
                                   ("m", "/p.csv", "d", "svc:1")])
def test_exactly_one_source_is_named(given):
    with pytest.raises(errors.InvalidArgument) as info:
        SeriesSource.checked(*given)
    assert info.value.message == ONE.format(sum(1 for x in given if x))


@pytest.mark.parametrize("given, field", [(("m", "", ""), "model"), (("", "/p.csv", ""), "path"),
                                          (("", "", "d"), "dataset"), (("", "", "", "svc:ab"), "job")])
def test_each_source_alone_is_accepted(given, field):
    source = SeriesSource.checked(*given)
    assert getattr(source, field) and [f for f in ("model", "path", "dataset", "job") if getattr(source, f)] == [field]


@pytest.mark.parametrize("job", ["../x:1", "svc", "svc:../../etc", "Svc:1"])
def test_a_job_that_is_not_a_job_id_is_refused_before_any_path(job):
    with pytest.raises(errors.InvalidArgument) as info:
        SeriesSource.checked("", "", "", job)
    assert info.value.message.startswith(f"{job!r} is not a job id")


@pytest.mark.parametrize("source, stem", [
    (SeriesSource(job="model-pruning:ab12"), "job-ab12"), (SeriesSource(model="m"), "m"),
    (SeriesSource(dataset="d"), "d"), (SeriesSource(path="/x/run.v2.csv"), "run-v2"),
    (SeriesSource(path="/x/tb/"), "tb"), (SeriesSource(path="/"), "metrics"),
])
def test_the_default_output_name_comes_from_the_source(source, stem):
    assert source.stem() == stem


def test_the_parent_is_the_store_entry_read():
    assert (SeriesSource(model="m").parent(), SeriesSource(dataset="d").parent(),
            SeriesSource(path="/p").parent(), SeriesSource(job="s:1").parent()) == ("m", "d", "", "")


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "home")


def test_a_missing_source_is_not_found(store):
    with pytest.raises(errors.NotFound, match="^No model named 'm'"):
        SeriesSource(model="m").check_exists(store)
    with pytest.raises(errors.NotFound, match="^No dataset named 'd'"):
        SeriesSource(dataset="d").check_exists(store)
    with pytest.raises(errors.NotFound) as info:
        SeriesSource(job="svc:ab").check_exists(store)
    assert info.value.message == (
        f"No training log for job 'svc:ab': training jobs keep one from their first step on, and each service its "
        f"{joblog.KEPT} newest; check the id with 'apt-model job list'.")
    SeriesSource(path="/nowhere.csv").check_exists(store)   # a path was resolved by the service already


def test_a_job_is_read_from_its_running_log_once_it_has_a_step(store):
    log = joblog.JobLog(joblog.job_log_path(store.root, "svc:ab"))
    log.start([])
    source = SeriesSource(job="svc:ab")
    source.check_exists(store)
    with pytest.raises(errors.InvalidArgument) as info:
        source.read(store)
    assert info.value.message == "Job 'svc:ab' has not finished a training step yet; try again after its first step."
    log.append({"step": 1, "loss": 2.0})
    log.append({"step": 2, "loss": 1.5})
    series = source.read(store)
    assert series.source == "job svc:ab" and series.get("loss") == ([1, 2], [2.0, 1.5])


def test_a_dataset_is_read_as_its_files(store):
    with store.create("datasets", "metrics", operation="test") as staging:
        (staging / "m.jsonl").write_text('{"step": 1, "loss": 3.0}\n{"step": 2, "loss": 2.0}\n')
    series = SeriesSource(dataset="metrics").read(store)
    assert series.source == "dataset metrics" and series.get("loss") == ([1, 2], [3.0, 2.0])


def test_a_path_is_read_where_the_service_resolved_it(tmp_path, store):
    (tmp_path / "m.csv").write_text("step,loss\n1,4.0\n")
    assert SeriesSource(path=str(tmp_path / "m.csv")).read(store).get("loss") == ([1], [4.0])


def test_a_model_is_read_from_its_training_log(store):
    from apt_model.modeling import trainlog

    with store.create("models", "trained", operation="test") as staging:
        (staging / trainlog.LOG_FILE).write_text('{"step": 1, "loss": 5.0}\n{"step": 2, "loss": 4.0}\n')
    series = SeriesSource(model="trained").read(store)
    assert series.get("loss") == ([1, 2], [5.0, 4.0]) and "trained" in series.source
    with store.create("models", "untrained", operation="test") as staging:
        (staging / "config.json").write_text("{}")
    with pytest.raises(errors.InvalidArgument) as info:
        SeriesSource(model="untrained").read(store)
    assert info.value.message.startswith(f"Model 'untrained' has no {trainlog.LOG_FILE} (or an empty one)")
    with pytest.raises(errors.NotFound):
        SeriesSource(model="absent").read(store)
