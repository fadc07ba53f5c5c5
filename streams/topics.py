"""Every topic the pipeline uses, declared in one place."""

STATEMENTS = "xapi.statements"
"""Stored statements, in store order per partition; a learner's statements share a partition."""

DOMAIN_EVENTS = "lms.events"
"""progress.updated, progress.module_completed, enrollment.completed (one per real transition)."""

DEAD_LETTERS = "xapi.deadletter"
"""Messages the worker could not read or apply, with the reason."""
