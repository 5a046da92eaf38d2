"""The model-distillation plugin: response, feature and relation distillation as jobs."""
