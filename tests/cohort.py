"""A simulated cohort for pipeline tests (``lrs simulate``'s ``catalog()`` and ``Simulation``),
and the funnel its statements must add up to by the reference model (``tests/reference/``)."""

from __future__ import annotations

from typing import Any

from lrs.simulate import LENGTH, VERB, VIDEO, agent, catalog
from lrs.simulate import Simulation as Cohort

from .reference import model

__all__ = ["LENGTH", "VERB", "VIDEO", "Cohort", "agent", "catalog", "expected_funnel"]


# --- what the sinks must hold: the reference model -------------------------------------------------


def expected_funnel(document: dict[str, Any], statements: list[dict[str, Any]]) -> dict[int, dict[str, int]]:
    """course → the completion funnel (started, progressed, passed, completed) the reference model
    of ``docs/analytics.md`` computes from the statements."""
    reference = model.Catalog(document)
    activity = model.learner_activity(model.facts_of(statements, reference), reference)
    return {
        course: dict(zip(("started", "progressed", "passed", "completed"), counts, strict=True))
        for course, counts in model.funnel(activity).items()
    }
