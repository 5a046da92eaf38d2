"""The run filters the dashboard offers (the browser test applies them)."""

from __future__ import annotations

import math

import numpy as np

from apt_viz.filters import MAX_CHOICES, final_metrics, run_filters, setting_filters


def test_only_settings_that_differ_are_offered_numbers_as_ranges_others_as_values():
    params = [{"lr": 1e-3, "seq_len": 32, "device": "cpu", "tokenizer_from": ""},
              {"lr": 3e-3, "seq_len": 32, "device": "cpu", "tokenizer_from": "run-a", "resume": True}]
    filters = {f["key"]: f for f in setting_filters(params)}
    assert set(filters) == {"lr", "tokenizer_from", "resume"}  # seq_len and device are equal
    assert filters["lr"]["kind"] == "range" and filters["lr"]["values"] == [1e-3, 3e-3]
    assert filters["tokenizer_from"] == {"key": "tokenizer_from", "group": "setting", "kind": "choice",
                                         "values": ["(unset)", "run-a"], "options": ["(unset)", "run-a"]}
    assert filters["resume"]["values"] == ["(unset)", "true"]


def test_a_setting_with_too_many_values_is_not_offered():
    params = [{"corpus": f"c{i}.txt"} for i in range(MAX_CHOICES + 1)]
    assert setting_filters(params) == []
    assert len(setting_filters(params[:MAX_CHOICES])) == 1


def test_final_metrics_skip_non_finite_losses_and_need_every_run():
    loss = np.array([3.0, 2.0, math.inf, 2.5, math.nan])
    assert final_metrics(loss, [(1, 2.2)]) == {"last loss": 2.5, "lowest loss": 2.0, "last val_loss": 2.2}
    runs = run_filters(["a", "b"], [{}, {}], [final_metrics(loss, [(1, 2.2)]), final_metrics(loss, [])])
    assert [f["key"] for f in runs["filters"]] == ["last loss", "lowest loss"]  # b has no val_loss

