"""Errors a use case raises; the HTTP layer answers each with its status code."""

from __future__ import annotations


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
