"""Sinks: where learning events land. One port (``ports.Sink``), one adapter per store.

Every sink is idempotent by statement id (a statement applied twice counts once), applies a
voiding as a retraction, and records per partition how far it got (a position) so the relay
can replay from the statement store whatever a sink may have missed.
"""
