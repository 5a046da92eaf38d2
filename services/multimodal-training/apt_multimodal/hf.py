"""The stored multimodal model as its own transformers model type, ``apt_multimodal``.

Importing this module registers ``AptMultimodalConfig`` with ``AutoConfig`` and the model with
``AutoModel`` and ``AutoModelForCausalLM``, so ``from_pretrained`` on a stored folder gives the
whole model (the gateway's ``info``/``size``/``test`` import it through
``apt_model.modeling.model_types``). It needs torch and transformers only.

Layout (LLaVA's names where LLaVA has the part, so an image-text model exports to a plain
``LlavaForConditionalGeneration`` by copying tensors; see ``apt_multimodal.export``):

* ``language_model``: any causal LM (``text_config``), with the placeholder tokens in its vocabulary;
* ``vision_tower``: a from-scratch ``SiglipVisionModel`` (``vision_config``); its last hidden state
  (every patch, no CLS) is what images and video frames become;
* ``multi_modal_projector``: LLaVA's linear_1 -> GELU -> linear_2, image patches to LM width;
* ``audio_tower`` + ``audio_projector``: a ViT over log-mel patches (``audio_config``);
* ``video_encoder`` + ``video_projector``: frames through ``vision_tower``, plus a learned temporal
  embedding per frame, then one transformer layer across all the clip's patches.

Each medium's patches take the place of as many copies of its placeholder token in the input.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, GenerationMixin, PreTrainedConfig, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.configuration_utils import SubConfigSpec

MODEL_TYPE = "apt_multimodal"
PLACEHOLDERS = {"image": "<image>", "audio": "<audio>", "video": "<video>"}


class AptMultimodalConfig(PreTrainedConfig):
    """text_config: the causal LM's; vision_config: a siglip_vision_model's (images and frames);
    audio_config: {n_mels, frames, patch, dim, layers} of the log-mel ViT; video_frames: frames
    per clip (0: no video); one placeholder token id per modality the model takes."""

    model_type = MODEL_TYPE
    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="siglip_vision_model", optional=True),
    }

    text_config: dict | PreTrainedConfig | None = None
    vision_config: dict | PreTrainedConfig | None = None
    audio_config: dict | None = None
    video_frames: int = 0
    image_token_id: int | None = None
    audio_token_id: int | None = None
    video_token_id: int | None = None
    projector_hidden_act: str = "gelu"
    tie_word_embeddings: bool = False

    def modalities(self) -> list[str]:
        return [m for m in PLACEHOLDERS if getattr(self, f"{m}_token_id") is not None]

    def token_ids(self) -> dict[str, int]:
        return {m: getattr(self, f"{m}_token_id") for m in self.modalities()}


class Projector(nn.Module):
    """LLaVA-1.5's two-layer MLP (same parameter names as ``LlavaMultiModalProjector``)."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu"):
        super().__init__()
        self.linear_1, self.act, self.linear_2 = nn.Linear(dim, hidden), ACT2FN[act], nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(x)))


def _encoder_layer(dim: int) -> nn.TransformerEncoderLayer:
    return nn.TransformerEncoderLayer(dim, max(1, dim // 32), 4 * dim, dropout=0.0, batch_first=True,
                                      norm_first=True, activation="gelu")


class AudioTower(nn.Module):
    """Patch embedding + learned positions + pre-norm transformer over (B, 1, n_mels, frames)."""

    def __init__(self, cfg: dict):
        super().__init__()
        p, dim = cfg["patch"], cfg["dim"]
        self.tokens = (cfg["n_mels"] // p) * (cfg["frames"] // p)
        self.height, self.width = cfg["n_mels"] // p * p, cfg["frames"] // p * p
        self.patches = nn.Conv2d(1, dim, p, stride=p)
        self.positions = nn.Parameter(torch.randn(1, self.tokens, dim) * 0.02)
        self.blocks = nn.TransformerEncoder(_encoder_layer(dim), cfg["layers"], enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[..., :self.height, :self.width]  # whole patches only
        x = self.patches(x).flatten(2).transpose(1, 2) + self.positions
        return self.norm(self.blocks(x))


class VideoEncoder(nn.Module):
    """Per-frame patch features (B, F, N, d) + a learned embedding per frame, then one
    transformer layer across the clip's F*N patches: motion is what differs between frames."""

    def __init__(self, frames: int, dim: int):
        super().__init__()
        self.temporal = nn.Parameter(torch.randn(1, frames, 1, dim) * 0.02)
        self.mixer = _encoder_layer(dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        b, f, n, d = feats.shape
        return self.mixer((feats + self.temporal[:, :f]).reshape(b, f * n, d))


def pixels(x: torch.Tensor) -> torch.Tensor:
    """Stored uint8 pixels as the vision tower's input: [0, 255] -> [-1, 1] (the exported
    processor's rescale 1/255 then mean 0.5, std 0.5)."""
    return x.float() / 127.5 - 1.0


def log_mel(x: torch.Tensor) -> torch.Tensor:
    """Stored log-mel (B, n_mels, frames) standardised per clip, as (B, 1, n_mels, frames)."""
    x = x.float().unsqueeze(1)
    return (x - x.mean(dim=(2, 3), keepdim=True)) / (x.std(dim=(2, 3), keepdim=True) + 1e-5)


class AptMultimodalForConditionalGeneration(PreTrainedModel, GenerationMixin):
    config_class = AptMultimodalConfig
    base_model_prefix = ""
    _supports_sdpa = True
    _no_split_modules: list[str] = []

    def __init__(self, config: AptMultimodalConfig):
        super().__init__(config)
        text, hidden, act = config.text_config, config.text_config.hidden_size, config.projector_hidden_act
        self.language_model = AutoModelForCausalLM.from_config(text)
        if config.vision_config is not None:
            self.vision_tower = AutoModel.from_config(config.vision_config)
            width = config.vision_config.hidden_size
            if config.image_token_id is not None:
                self.multi_modal_projector = Projector(width, hidden, act)
            if config.video_token_id is not None:
                self.video_encoder = VideoEncoder(config.video_frames, width)
                self.video_projector = Projector(width, hidden, act)
        if config.audio_token_id is not None:
            self.audio_tower = AudioTower(config.audio_config)
            self.audio_projector = Projector(config.audio_config["dim"], hidden, act)
        self.post_init()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    def tokens_per_item(self) -> dict[str, int]:
        """Placeholder copies one image / audio clip / video takes."""
        out = {}
        if self.config.vision_config is not None:
            v = self.config.vision_config
            per_frame = (v.image_size // v.patch_size) ** 2
            if self.config.image_token_id is not None:
                out["image"] = per_frame
            if self.config.video_token_id is not None:
                out["video"] = per_frame * self.config.video_frames
        if self.config.audio_token_id is not None:
            out["audio"] = self.audio_tower.tokens
        return out

    def image_patches(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(n, 3, S, S) normalised pixels -> (n, N, d): the last hidden state, every patch (as LLaVA's
        ``vision_feature_layer=-1``, ``vision_feature_select_strategy='full'``)."""
        return self.vision_tower(pixel_values, output_hidden_states=True).hidden_states[-1]

    def features(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Stored media of one modality (n, ...) -> (n, tokens, LM width)."""
        if modality == "image":
            return self.multi_modal_projector(self.image_patches(pixels(x)))
        if modality == "audio":
            return self.audio_projector(self.audio_tower(log_mel(x)))
        n, f = x.shape[:2]  # video: (n, F, 3, S, S)
        frames = self.image_patches(pixels(x.flatten(0, 1)))
        return self.video_projector(self.video_encoder(frames.reshape(n, f, *frames.shape[1:])))

    def embed(self, input_ids: torch.Tensor, media: dict[str, torch.Tensor], with_media: bool = True,
              idle: dict[str, torch.Tensor] | None = None):
        """Input embeddings with each placeholder run replaced by its medium's projected patches
        (``with_media=False``: the placeholders stay, the text-only baseline). ``idle``: a stand-in
        item of each modality the rows lack, run through its tower and added times 0: the ranks of
        a sharded (FSDP) run must all run every tower, in one order (modalities are taken sorted)."""
        embeds = self.get_input_embeddings()(input_ids)
        if not with_media:
            return embeds
        token_ids = self.config.token_ids()
        idle = idle or {}
        for modality in sorted({**media, **idle}):
            if modality not in media:
                embeds = embeds + 0.0 * self.features(modality, idle[modality]).sum()
                continue
            x = media[modality]
            feats = self.features(modality, x)
            slots = input_ids == token_ids[modality]
            if int(slots.sum()) != feats.shape[0] * feats.shape[1]:
                raise ValueError(
                    f"{int(slots.sum())} {PLACEHOLDERS[modality]} positions for {feats.shape[0]} media of "
                    f"{feats.shape[1]} tokens each: the batch's placeholders and media do not match.")
            embeds = embeds.masked_scatter(slots.unsqueeze(-1), feats.reshape(-1, feats.shape[-1]).to(embeds.dtype))
        return embeds

    def forward(self, input_ids=None, attention_mask=None, labels=None, media=None, with_media: bool = True,
                inputs_embeds=None, idle=None, **kwargs):
        """The LM on the merged embeddings; ``media`` maps modality -> stored tensors (uint8 images
        and frames, log-mel). Without media it is the plain LM (``generate`` on text)."""
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids, media or {}, with_media, idle)
        return self.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=labels,
                                   **kwargs)


AutoConfig.register(MODEL_TYPE, AptMultimodalConfig, exist_ok=True)
AutoModel.register(AptMultimodalConfig, AptMultimodalForConditionalGeneration, exist_ok=True)
AutoModelForCausalLM.register(AptMultimodalConfig, AptMultimodalForConditionalGeneration, exist_ok=True)
