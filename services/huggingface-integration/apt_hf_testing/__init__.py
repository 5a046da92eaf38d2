"""Test support for the huggingface-integration plugin: local servers speaking the hubs' HTTP
APIs (named as such) and small helpers. Used by tests and benchmarks only."""
