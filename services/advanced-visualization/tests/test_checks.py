"""The guards every visualization shares (apt_viz.checks): models that exist, else the closest
names; outputs only as free store datasets, never a caller's path. What `make mutate`'s viz-checks
target runs (under a second)."""

from __future__ import annotations

import pytest

from apt_model import errors
from apt_model.store import Store

from apt_viz.checks import check_models, check_output


@pytest.fixture
def store(tmp_path) -> Store:
    store = Store(tmp_path / "home")
    for kind, name in (("models", "llama-small"), ("models", "llama-big"), ("models", "other"),
                       ("datasets", "taken")):
        with store.create(kind, name, operation="test") as staging:
            (staging / "f").write_text("x")
    return store


def test_known_models_pass(store):
    check_models(store, ["llama-small", "other"])
    check_models(store, [])


def test_the_first_unknown_model_is_named_with_the_closest_names(store):
    with pytest.raises(errors.NotFound) as info:
        check_models(store, ["other", "llama-smal", "nope"])
    assert info.value.message == ("No model named 'llama-smal' in the store. Did you mean 'llama-small', "
                                  "'llama-big'? Run 'apt-model list' to see what is there.")
    with pytest.raises(errors.NotFound) as info:
        check_models(store, ["zzzzzz"])
    assert info.value.message == "No model named 'zzzzzz' in the store. Run 'apt-model list' to see what is there."


def test_a_model_name_is_a_store_name_before_it_is_looked_up(store):
    with pytest.raises(errors.InvalidArgument) as info:
        check_models(store, ["../home"])
    assert info.value.message.startswith("Invalid model name '../home':")


def test_an_output_is_a_free_store_dataset(store):
    check_output(store, "fresh", overwrite=False, output_path="")
    check_output(store, "taken", overwrite=True, output_path="")
    with pytest.raises(errors.AlreadyExists) as info:
        check_output(store, "taken", overwrite=False, output_path="")
    assert info.value.message == ("Dataset 'taken' already exists in the store; choose another --output-name or "
                                  "pass --overwrite.")
    with pytest.raises(errors.InvalidArgument) as info:
        check_output(store, "Bad/x", overwrite=True, output_path="")
    assert info.value.message.startswith("Invalid dataset name 'Bad/x':")


def test_a_callers_output_path_is_refused_whatever_else_is_given(store):
    for name, overwrite in (("fresh", False), ("taken", True)):
        with pytest.raises(errors.InvalidArgument) as info:
            check_output(store, name, overwrite=overwrite, output_path="/tmp/out.html")
        assert info.value.message == ("output_path is no longer used: outputs are store datasets. Pass --output-name "
                                      "NAME and download the result with 'apt-model data pull NAME'.")


def test_at_most_three_names_are_offered_down_to_half_alike(tmp_path):
    store = Store(tmp_path / "many")
    for name in ("llama-small", "llama-big", "llama-mid", "llama-tiny", "other"):
        with store.create("models", name, operation="test") as staging:
            (staging / "f").write_text("x")
    with pytest.raises(errors.NotFound) as info:
        check_models(store, ["llama"])
    assert info.value.message.count("'llama-") == 3
    with pytest.raises(errors.NotFound) as info:
        check_models(store, ["ot"])     # 0.57 alike 'other'
    assert "Did you mean 'other'?" in info.value.message
