"""The command line: thin commands over the gateway's gRPC API (``python -m apt_model``)."""
