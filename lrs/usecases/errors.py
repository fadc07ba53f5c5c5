"""Errors a use case raises; the HTTP layer answers each with its status code."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class LRSError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(LRSError):
    status = 400


class Unauthorized(LRSError):
    status = 401


class Forbidden(LRSError):
    status = 403


class NotFound(LRSError):
    status = 404


class MethodNotAllowed(LRSError):
    status = 405

    def __init__(self, message: str, allowed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allowed = allowed


class Conflict(LRSError):
    status = 409


class PreconditionFailed(LRSError):
    status = 412


class PayloadTooLarge(LRSError):
    status = 413


class TooManyRequests(LRSError):
    """A limit of the caller's tenant (statements per second, storage); ``retry_after``: seconds
    after which the request may succeed (the Retry-After header)."""

    status = 429

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Busy(LRSError):
    """The store could not take the write now (it kept conflicting); the client may retry."""

    status = 503


def validated(model: type[M], raw: Any, what: str) -> M:
    """``raw`` (parsed JSON) as ``model``; ``BadRequest`` names the first problem and where."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "the document"
        raise BadRequest(f"not {what}: {where}: {error['msg']}") from None
