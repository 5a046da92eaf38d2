"""multimodal-training: text + image + audio datasets and training, checked up front."""
