"""APT platform: the shared package (stubs, service runtime, model store, client SDK, CLI)."""

__version__ = "0.1.0"
