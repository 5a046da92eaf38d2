"""The multimodal model: a store causal LM, from-scratch ViT encoders and MLP projectors.

Each medium becomes ``tokens`` embeddings (one per patch) that take the place of as many copies
of its placeholder token in the LM's input (LLaVA's recipe: encoder -> projector -> LM inputs).
The LM stays a plain causal LM with its placeholder tokens added, so the stored model's LM part
is what ``apt-model info/size/test`` read; the encoders and projectors sit beside it in
``multimodal.safetensors`` with their configuration in ``multimodal.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from apt_model import errors

PLACEHOLDERS = {"image": "<image>", "audio": "<audio>", "video": "<video>"}
TOWERS_FILE = "multimodal.safetensors"
CONFIG_FILE = "multimodal.json"
MODULES = ("lm", "image_encoder", "audio_encoder", "image_projector", "audio_projector")


@dataclass(frozen=True)
class TowerConfig:
    """A ViT over a (channels, height, width) input cut into square patches."""

    channels: int
    height: int
    width: int
    patch: int
    dim: int
    layers: int

    @property
    def tokens(self) -> int:
        return (self.height // self.patch) * (self.width // self.patch)


class ViT(nn.Module):
    """Patch embedding + learned positions + pre-norm transformer encoder; (B, C, H, W) -> (B, N, dim)."""

    def __init__(self, cfg: TowerConfig):
        super().__init__()
        if cfg.height % cfg.patch or cfg.width % cfg.patch:
            raise errors.InvalidArgument(
                f"patch_size {cfg.patch} does not divide the input ({cfg.height}x{cfg.width}); "
                f"choose a divisor of both.")
        self.patches = nn.Conv2d(cfg.channels, cfg.dim, cfg.patch, stride=cfg.patch)
        self.positions = nn.Parameter(torch.randn(1, cfg.tokens, cfg.dim) * 0.02)
        layer = nn.TransformerEncoderLayer(cfg.dim, max(1, cfg.dim // 32), 4 * cfg.dim, dropout=0.0,
                                           batch_first=True, norm_first=True, activation="gelu")
        self.blocks = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patches(x).flatten(2).transpose(1, 2) + self.positions  # (B, N, dim)
        return self.norm(self.blocks(x))


def projector(dim: int, hidden: int) -> nn.Module:
    """The two-layer MLP of LLaVA-1.5 from encoder width to LM width."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))


def prepare(modality: str, x: torch.Tensor) -> torch.Tensor:
    """Stored tensors as encoder inputs: images to [-1, 1]; log-mel standardised per clip."""
    if modality == "image":
        return x.float() / 127.5 - 1.0
    x = x.float().unsqueeze(1)  # (B, 1, n_mels, frames)
    return (x - x.mean(dim=(2, 3), keepdim=True)) / (x.std(dim=(2, 3), keepdim=True) + 1e-5)


class MultimodalLM(nn.Module):
    """The LM with one encoder and one projector per modality."""

    def __init__(self, lm, towers: dict[str, TowerConfig], token_ids: dict[str, int]):
        super().__init__()
        self.lm, self.tower_configs, self.token_ids = lm, towers, token_ids
        hidden = lm.get_input_embeddings().embedding_dim
        self.encoders = nn.ModuleDict({m: ViT(c) for m, c in towers.items()})
        self.projectors = nn.ModuleDict({m: projector(c.dim, hidden) for m, c in towers.items()})

    def module(self, name: str) -> nn.Module:
        """A module by its request name (lm, image_encoder, audio_projector, ...)."""
        if name == "lm":
            return self.lm
        modality, _, part = name.partition("_")
        table = {"encoder": self.encoders, "projector": self.projectors}.get(part)
        if table is None or modality not in table:
            raise errors.InvalidArgument(
                f"Unknown module {name!r}; this model has: {', '.join(self.module_names())}.")
        return table[modality]

    def module_names(self) -> list[str]:
        return ["lm"] + [f"{m}_{p}" for m in self.encoders for p in ("encoder", "projector")]

    def embed(self, input_ids: torch.Tensor, media: dict[str, torch.Tensor], with_media: bool = True):
        """Input embeddings with each placeholder run replaced by its medium's projected patches
        (``with_media=False``: the placeholders stay, the text-only baseline)."""
        embeds = self.lm.get_input_embeddings()(input_ids)  # (B, T, h)
        if not with_media:
            return embeds
        for modality, x in media.items():
            cfg = self.tower_configs[modality]
            x = prepare(modality, x)[..., :cfg.height, :cfg.width]  # audio: whole patches only
            feats = self.projectors[modality](self.encoders[modality](x))  # (n, N, h)
            slots = input_ids == self.token_ids[modality]
            if int(slots.sum()) != feats.shape[0] * feats.shape[1]:
                raise errors.InvalidArgument(
                    f"{int(slots.sum())} {PLACEHOLDERS[modality]} positions for {feats.shape[0]} media of "
                    f"{feats.shape[1]} tokens each: the batch's placeholders and media do not match.")
            embeds = embeds.masked_scatter(slots.unsqueeze(-1), feats.reshape(-1, feats.shape[-1]).to(embeds.dtype))
        return embeds

    def forward(self, input_ids, attention_mask, labels=None, media=None, with_media: bool = True):
        embeds = self.embed(input_ids, media or {}, with_media)
        return self.lm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, use_cache=False)

    def save_towers(self, folder: Path) -> None:
        from safetensors.torch import save_file

        state = {f"encoders.{k}": v for k, v in self.encoders.state_dict().items()}
        state |= {f"projectors.{k}": v for k, v in self.projectors.state_dict().items()}
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(folder / TOWERS_FILE))
        config = {"towers": {m: asdict(c) for m, c in self.tower_configs.items()}, "token_ids": self.token_ids}
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")


def is_multimodal(folder: Path) -> bool:
    return (folder / CONFIG_FILE).is_file() and (folder / TOWERS_FILE).is_file()


def load(folder: Path, device: str = "cpu") -> tuple[MultimodalLM, object]:
    """A stored multimodal model and its tokenizer."""
    from safetensors.torch import load_file

    from apt_model.modeling.io import load_model, load_tokenizer

    if not is_multimodal(folder):
        raise errors.FailedPrecondition(
            f"Model {folder.name!r} is not a multimodal model ({CONFIG_FILE} missing); train one with "
            f"'apt-model multimodal-training train'.")
    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    towers = {m: TowerConfig(**c) for m, c in config["towers"].items()}
    model = MultimodalLM(load_model(folder), towers, config["token_ids"])
    state = load_file(str(folder / TOWERS_FILE))
    model.encoders.load_state_dict({k[len("encoders."):]: v for k, v in state.items() if k.startswith("encoders.")})
    model.projectors.load_state_dict({k[len("projectors."):]: v for k, v in state.items()
                                      if k.startswith("projectors.")})
    return model.to(device).eval(), load_tokenizer(folder)
