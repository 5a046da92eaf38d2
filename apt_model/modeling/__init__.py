"""Model helpers shared by the torch services (gateway core, pruning, distillation, HF).

Importing this package needs torch and transformers; services without torch never import it.
"""
