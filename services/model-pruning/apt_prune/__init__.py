"""The model-pruning plugin: magnitude, Taylor, lottery-ticket and structured pruning of
causal LMs, each producing a new store model that reloads with plain transformers."""
