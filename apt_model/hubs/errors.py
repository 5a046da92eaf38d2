"""The one place where hub client errors become ``apt_model.errors``.

huggingface_hub and the modelscope SDK raise their own exception types (and, below them, HTTP
and transport errors); ``hf_error`` and ``modelscope_error`` turn each into the platform error
whose gRPC status fits, with a sentence that names the next step. Both clients in
``apt_model.hubs`` call them through ``HubCall.errors()``; nothing above a client sees a hub
library's exception. The client libraries are imported inside the functions: apt_model is in
every image, most of which do not install them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

from apt_model import errors


@dataclass(frozen=True)
class HubCall:
    """What a hub call was doing: the facts its error messages are made of."""

    hub: str                  # how messages name the service: "The Hub", "ModelScope"
    endpoint: str             # where the call went
    endpoint_var: str         # the variable that sets the endpoint: HF_ENDPOINT, MODELSCOPE_ENDPOINT
    token_var: str            # the variable that sets the token: HF_TOKEN, MODELSCOPE_API_TOKEN
    token: str | None         # the token sent, if any; never shown, every message is redacted of it
    repo_id: str
    repo_type: str = "model"
    revision: str = ""        # "" when the call names none
    writing: bool = False     # whether the call changes the repo (which access the token needs)
    action: str = ""          # what the caller was doing ("upload m1/a.bin"); prefixes messages when set
    retry_hint: str = ""      # a sentence added when the hub is unreachable or down, e.g. "Backups resume."
    offline: bool = False     # the caller reads from the local cache only (HF_HUB_OFFLINE)
    cache: str = ""           # that cache's folder, "" = the library's default

    @contextlib.contextmanager
    def errors(self, mapper: Callable[[BaseException, "HubCall"], errors.AptError | None]) -> Iterator[None]:
        """Run the block, raising ``mapper``'s platform error for what it recognises."""
        try:
            yield
        except errors.AptError:
            raise
        except Exception as exc:
            mapped = mapper(exc, self)
            if mapped is None:
                raise
            raise mapped from exc

    def say(self, text: str) -> str:
        text = f"Cannot {self.action}: {text}" if self.action else text
        if self.token and len(self.token) >= 4:
            text = text.replace(self.token, "***")
        return text

    @property
    def _access(self) -> str:
        return "write" if self.writing else "read"

    @property
    def token_hint(self) -> str:
        if self.token:
            return (f"{self.token_var} is set but was refused: check that it is valid and has {self._access} "
                    f"access to {self.repo_id!r}")
        return f"set {self.token_var} to a token with {self._access} access to {self.repo_id!r}"

    def retry(self, text: str) -> str:
        return f"{text} {self.retry_hint}" if self.retry_hint else text

    def unreachable(self, exc: BaseException) -> errors.Unavailable:
        return errors.Unavailable(self.say(self.retry(
            f"{self.hub} at {self.endpoint} is unreachable ({type(exc).__name__}). Check the network and "
            f"{self.endpoint_var}.")))

    def not_found(self, *, or_revision: bool = False) -> errors.NotFound:
        """NOT_FOUND for the repo; ``or_revision``: the hub's answer may also mean the revision."""
        at = f" at revision {self.revision!r}" if or_revision and self.revision else ""
        seen = f" that {self.token_var} can see" if self.token else ""
        step = ("check the repo id (format 'org/name')" + (" and the revision" if at else "")
                + (", or create the repo" if self.writing else ""))
        return errors.NotFound(self.say(
            f"No {self.repo_type} repo {self.repo_id!r}{at} on {self.endpoint}{seen}; {step}."))

    def from_status(self, status: int, exc: BaseException) -> errors.AptError:
        """The error for an HTTP answer the library did not classify further."""
        if status in (401, 403):
            return errors.PermissionDenied(self.say(
                f"{self.hub} at {self.endpoint} refused the request (HTTP {status}): {self.token_hint}."))
        if status == 404:
            return self.not_found(or_revision=True)
        if status == 429 or status >= 500:
            return errors.Unavailable(self.say(self.retry(
                f"{self.hub} at {self.endpoint} is unavailable (HTTP {status}); retry later.")))
        return self.rejected(exc)

    def rejected(self, exc: BaseException) -> errors.FailedPrecondition:
        return errors.FailedPrecondition(self.say(
            f"{self.hub} at {self.endpoint} rejected the request: {str(exc)[:300]}"))


def _status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    return getattr(exc, "status_code", None) or (response.status_code if response is not None else 0)


def hf_error(exc: BaseException, call: HubCall) -> errors.AptError | None:
    """The platform error for a huggingface_hub (or its HTTP transport's) exception; None for others."""
    import httpx2
    from huggingface_hub import errors as hf

    if isinstance(exc, hf.GatedRepoError):
        return errors.PermissionDenied(call.say(
            f"{call.repo_type} repo {call.repo_id!r} on {call.endpoint} is gated: accept its terms on the Hub, "
            f"then {call.token_hint}."))
    if isinstance(exc, hf.RevisionNotFoundError):
        return errors.NotFound(call.say(
            f"{call.repo_type} repo {call.repo_id!r} has no revision {call.revision!r} on {call.endpoint}; "
            "give an existing branch, tag or commit."))
    if isinstance(exc, hf.RepositoryNotFoundError):
        status = _status(exc)
        if status in (401, 403):
            # the Hub answers anonymous callers 401 for private and for missing repos alike
            return errors.PermissionDenied(call.say(
                f"{call.repo_type} repo {call.repo_id!r} on {call.endpoint} is private, gated or does not exist "
                f"(HTTP {status}, the Hub does not say which without a token): check the repo id, "
                f"and {call.token_hint}."))
        return call.not_found()
    if isinstance(exc, hf.RemoteEntryNotFoundError):
        return errors.NotFound(call.say(
            f"A file of {call.repo_id!r} at {call.revision or 'main'!r} is missing on {call.endpoint}: {exc}"))
    if isinstance(exc, hf.LocalEntryNotFoundError):
        if call.offline:
            return errors.FailedPrecondition(call.say(
                f"HF_HUB_OFFLINE is set and {call.repo_id!r} at {call.revision!r} is not (completely) in the "
                f"cache {call.cache or '(default)'}; unset HF_HUB_OFFLINE to download it."))
        return errors.Unavailable(call.say(call.retry(
            f"{call.hub} at {call.endpoint} is unreachable and {call.repo_id!r} is not in the local cache. "
            f"Check the network and {call.endpoint_var}.")))
    if isinstance(exc, hf.HfHubHTTPError):
        # a 404 the library did not classify (repo, revision, entry) is a route the endpoint lacks
        status = _status(exc)
        return call.rejected(exc) if status == 404 else call.from_status(status, exc)
    if isinstance(exc, (httpx2.TransportError, ConnectionError)):
        return call.unreachable(exc)
    if isinstance(exc, httpx2.HTTPStatusError):
        status = exc.response.status_code
        return call.rejected(exc) if status == 404 else call.from_status(status, exc)
    if isinstance(exc, httpx2.HTTPError):  # decoding errors, redirect loops
        return errors.Unavailable(call.say(call.retry(
            f"{call.hub} at {call.endpoint} sent an answer that cannot be used ({type(exc).__name__}: {exc}).")))
    if isinstance(exc, hf.HFValidationError):
        return errors.InvalidArgument(call.say(f"Invalid repo id or revision: {exc}"))
    return None


def modelscope_error(exc: BaseException, call: HubCall) -> errors.AptError | None:
    """The platform error for a modelscope SDK (or requests) exception; None for others."""
    import requests
    from modelscope_hub import errors as ms

    if isinstance(exc, (ms.AuthenticationError, ms.PermissionDeniedError)):
        return call.from_status(_status(exc) or 401, exc)
    if isinstance(exc, ms.NotExistError):
        return call.not_found(or_revision=True)
    if isinstance(exc, (ms.RateLimitError, ms.ServerError)):
        return call.from_status(_status(exc) or 503, exc)
    if isinstance(exc, (ms.NetworkError, requests.ConnectionError, requests.Timeout)):
        return call.unreachable(exc)
    if isinstance(exc, (ms.APIError, requests.HTTPError)):
        # the SDK's compat layer raises requests.HTTPError; its core raises APIError
        return call.from_status(_status(exc), exc)
    if isinstance(exc, ms.HubError):
        return errors.FailedPrecondition(call.say(f"{call.hub} at {call.endpoint} failed for {call.repo_id!r}: {exc}"))
    return None
