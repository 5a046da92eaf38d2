"""The ollama-export plugin: store model -> GGUF (f32/f16/q8_0) -> Modelfile -> llama.cpp check -> Ollama."""
