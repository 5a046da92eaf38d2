"""What the hub backends (hf, modelscope) share: a client from apt_model.hubs, whose error
mapping every call goes through."""

from __future__ import annotations

import abc

from apt_model import errors
from apt_storage.backends import configured_endpoint
from apt_storage.backends.base import Backend

# The next step a hub error message gives when the hub is unreachable or down.
RESUME_HINT = "Run the command again: backups resume."


class HubBackend(Backend):
    """A model repository on a hub, ``{scheme}://owner/repo``."""

    scheme: str     # "hf", "modelscope"
    token_var: str  # the credential sent to the configured endpoint

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.repo_id = self.dest.container
        self.endpoint = (self.options.endpoint_url or configured_endpoint(self.scheme, self.source)).rstrip("/")
        self.hub = self.client(self.endpoint, self.creds.get(self.token_var))
        self.api = self.hub.api  # the client library's API object (HfApi, HubApi)

    @abc.abstractmethod
    def client(self, endpoint: str, token: str | None):
        """The apt_model.hubs client for ``endpoint``."""

    def describe(self) -> str:
        return f"{self.scheme}://{self.repo_id} at {self.endpoint}"

    def _call(self, fn, action: str, writing: bool = False):
        """``fn()``, with the hub's errors mapped by the client; a local I/O error (temporary
        folder, move) is RESOURCE_EXHAUSTED when the disk is full and UNAVAILABLE otherwise."""
        try:
            with self.hub.errors(self.repo_id, action=action, writing=writing):
                return fn()
        except errors.AptError:  # mapped already (some subclass OSError: PermissionDenied, NotFound)
            raise
        except OSError as exc:
            full = errors.disk_full(exc)
            raise full or errors.Unavailable(self.creds.redact(f"Cannot {action} at {self.describe()}: {exc}")) from exc
