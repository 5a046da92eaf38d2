"""Building, naming the parts of, saving and loading the multimodal model (``apt_multimodal.hf``).

A new model is a store causal LM (placeholder tokens added) plus from-scratch towers sized from
the dataset's media: a SigLIP vision tower for images and video frames, a log-mel ViT for audio,
each with a LLaVA projector. It is stored as one Hugging Face folder of model type
``apt_multimodal`` (``config.json`` with ``text_config``/``vision_config``, one safetensors file,
the tokenizer), which ``AutoModelForCausalLM`` loads once ``apt_multimodal.hf`` is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from apt_model import errors
from apt_model.modeling.io import load_model, load_tokenizer, read_config, save_model

from apt_multimodal.hf import MODEL_TYPE, PLACEHOLDERS, AptMultimodalConfig
from apt_multimodal.hf import AptMultimodalForConditionalGeneration as MultimodalLM

__all__ = ["PLACEHOLDERS", "MultimodalLM", "TowerSpec", "create", "is_multimodal", "load", "module", "module_names"]

ATTRIBUTES = {"lm": "language_model", "image_encoder": "vision_tower", "image_projector": "multi_modal_projector",
              "audio_encoder": "audio_tower", "audio_projector": "audio_projector",
              "video_encoder": "video_encoder", "video_projector": "video_projector"}


@dataclass(frozen=True)
class TowerSpec:
    """Width, depth and patch side of every from-scratch encoder."""

    width: int = 64
    layers: int = 2
    patch: int = 8


def create(lm, token_ids: dict[str, int], media: dict, audio_frames: int, spec: TowerSpec) -> MultimodalLM:
    """A new model around ``lm`` for the modalities in ``token_ids``; ``media``: the dataset's
    sizes (image_size, n_mels, video_frames); ``audio_frames``: mel frames per stored clip."""
    from transformers import SiglipVisionConfig

    vision = audio = None
    if "image" in token_ids or "video" in token_ids:
        size = media["image_size"]
        if size % spec.patch:
            raise errors.InvalidArgument(f"patch_size {spec.patch} does not divide the image size {size}; "
                                         f"choose a divisor of it.")
        vision = SiglipVisionConfig(hidden_size=spec.width, intermediate_size=4 * spec.width,
                                    num_hidden_layers=spec.layers, num_attention_heads=max(1, spec.width // 32),
                                    num_channels=3, image_size=size, patch_size=spec.patch, vision_use_head=False)
    if "audio" in token_ids:
        if media["n_mels"] < spec.patch or audio_frames < spec.patch:
            raise errors.InvalidArgument(f"patch_size {spec.patch} is larger than the log-mel features "
                                         f"({media['n_mels']}x{audio_frames}); choose a smaller one.")
        audio = {"n_mels": media["n_mels"], "frames": audio_frames, "patch": spec.patch, "dim": spec.width,
                 "layers": spec.layers}
    config = AptMultimodalConfig(
        text_config=lm.config, vision_config=vision, audio_config=audio,
        video_frames=media.get("video_frames", 0) if "video" in token_ids else 0,
        image_token_id=token_ids.get("image"), audio_token_id=token_ids.get("audio"),
        video_token_id=token_ids.get("video"))
    model = MultimodalLM(config)
    model.language_model = lm
    return model


def module(model: MultimodalLM, name: str):
    """A part by its request name (lm, image_encoder, audio_projector, ...)."""
    if name not in module_names(model):
        raise errors.InvalidArgument(f"Unknown module {name!r}; this model has: {', '.join(module_names(model))}.")
    return getattr(model, ATTRIBUTES[name])


def module_names(model: MultimodalLM) -> list[str]:
    return [name for name, attr in ATTRIBUTES.items() if hasattr(model, attr)]


def is_multimodal(folder: Path) -> bool:
    return (folder / "config.json").is_file() and read_config(folder).get("model_type") == MODEL_TYPE


def load(folder: Path, device: str = "cpu") -> tuple[MultimodalLM, object]:
    """A stored multimodal model and its tokenizer."""
    if not is_multimodal(folder):
        raise errors.FailedPrecondition(
            f"Model {folder.name!r} is not a multimodal model (model_type is not {MODEL_TYPE!r}); train one "
            f"with 'apt-model multimodal-training train'.")
    return load_model(folder, device), load_tokenizer(folder)


def save(model: MultimodalLM, tokenizer, folder: Path) -> None:
    save_model(model, tokenizer, folder)
