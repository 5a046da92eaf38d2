"""Loading models in threads of one process (a service's jobs): transformers 5 swaps class
attributes for the length of a from_pretrained, so unserialised loads can switch weight tying
off for the whole process. apt_model.modeling.io.building serialises them."""

from __future__ import annotations

import threading

from transformers import PreTrainedModel

from apt_model.modeling.io import load_model
from apt_model.modeling.preset import create_model, preset_config


def test_concurrent_loads_leave_weight_tying_working(tmp_path):
    config = preset_config("tiny", 300, tie_word_embeddings=True)
    create_model(config, seed=0).save_pretrained(tmp_path)
    tie_weights, errors = PreTrainedModel.tie_weights, []

    def load_many():
        try:
            for _ in range(15):
                model = load_model(tmp_path)
                assert model.lm_head.weight is model.model.embed_tokens.weight
        except Exception as exc:  # noqa: BLE001 - reported below with the thread's failure
            errors.append(exc)

    threads = [threading.Thread(target=load_many) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert PreTrainedModel.tie_weights is tie_weights  # not left swapped by a load in another thread
    fresh = create_model(config, seed=0)
    assert fresh.lm_head.weight is fresh.model.embed_tokens.weight
