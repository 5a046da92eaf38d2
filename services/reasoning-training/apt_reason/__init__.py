"""reasoning-training: generated reasoning tasks, chain-of-thought SFT, search under a token budget."""
