"""The huggingface-integration plugin: Hub and local HF import/export, datasets, HF Trainer."""
