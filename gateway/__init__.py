"""The gateway service: core commands, plugin registry, router and deployers."""
