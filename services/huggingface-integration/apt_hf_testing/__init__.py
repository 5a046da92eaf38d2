"""Test support for the huggingface-integration plugin: tokens, job runs and store checks (the
local hub servers are apt_model.testing.hubs'). Used by tests and benchmarks only."""
