"""The work of a StartExportLlava job: an image-text model of this plugin as a plain
``LlavaForConditionalGeneration`` + ``LlavaProcessor`` folder in the store.

Nothing is approximated: the vision tower is already a ``SiglipVisionModel`` whose last hidden
state (every patch) LLaVA selects with ``vision_feature_layer=-1`` and
``vision_feature_select_strategy='full'``; the projector has LLaVA's layout; the LM's decoder and
head are copied as they are. The processor resizes to the stored image side and normalises
with mean 0.5 / std 0.5, which is what training did to the stored uint8 pixels. The folder
loads with ``AutoModelForImageTextToText`` and ``AutoProcessor`` in a process that never
imports this project (tests/test_export.py checks the logits to 1e-5).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from apt_model import errors
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_multimodal import model as mm

OPERATION = "multimodal-export-llava"


@dataclass(frozen=True)
class ExportSpec:
    model: str
    output_name: str
    overwrite: bool = False


def llava_of(model: mm.MultimodalLM):
    """The LlavaForConditionalGeneration with ``model``'s image path and LM, tensors copied."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    cfg = model.config
    if cfg.image_token_id is None:
        raise errors.FailedPrecondition(
            "This model has no image tower; only an image-text model exports to LLaVA.")
    others = [m for m in cfg.modalities() if m != "image"]
    vision = cfg.vision_config
    config = LlavaConfig(
        vision_config=vision.to_dict(), text_config=cfg.text_config.to_dict(), image_token_index=cfg.image_token_id,
        image_seq_length=(vision.image_size // vision.patch_size) ** 2, projector_hidden_act=cfg.projector_hidden_act,
        vision_feature_select_strategy="full", vision_feature_layer=-1, multimodal_projector_bias=True,
        tie_word_embeddings=bool(cfg.text_config.tie_word_embeddings))
    llava = LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():
        llava.model.vision_tower.load_state_dict(model.vision_tower.state_dict())
        llava.model.multi_modal_projector.load_state_dict(model.multi_modal_projector.state_dict())
        llava.model.language_model.load_state_dict(model.language_model.base_model.state_dict())
        llava.lm_head.load_state_dict(model.language_model.get_output_embeddings().state_dict())
    return llava, others


def processor_of(model: mm.MultimodalLM, tokenizer):
    from PIL import Image
    from transformers import LlavaProcessor, SiglipImageProcessorPil

    vision = model.config.vision_config
    images = SiglipImageProcessorPil(
        do_resize=True, size={"height": vision.image_size, "width": vision.image_size}, resample=Image.BICUBIC,
        do_rescale=True, rescale_factor=1 / 255, do_normalize=True, image_mean=[0.5] * 3, image_std=[0.5] * 3,
        do_convert_rgb=True)
    return LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=vision.patch_size,
                          vision_feature_select_strategy="full", image_token=mm.PLACEHOLDERS["image"],
                          num_additional_image_tokens=0)


def run_export(store: Store, spec: ExportSpec, ctx: JobContext) -> dict[str, Any]:
    ctx.report(progress=0.0, stage="load", message=f"loading {spec.model!r}")
    model, tok = mm.load(store.model(spec.model).path)
    llava, dropped = llava_of(model)
    if dropped:
        ctx.warn(f"LLaVA takes images only: the {', '.join(dropped)} tower(s) of {spec.model!r} are left out.")
    ctx.check_cancelled()
    ctx.report(progress=0.5, stage="save", message=f"writing {spec.output_name!r}")
    params = sum(p.numel() for p in llava.parameters())
    with store.create("models", spec.output_name, operation=OPERATION, parent=spec.model,
                      parameters={"format": "llava", "dropped_towers": dropped},
                      metrics={"parameters": params}, overwrite=spec.overwrite) as tmp:
        llava.save_pretrained(str(tmp), safe_serialization=True)
        processor_of(model, tok).save_pretrained(str(tmp))
    return {"model": spec.output_name, "architecture": "LlavaForConditionalGeneration", "parameters": params,
            "dropped_towers": dropped}
