"""The stream pipeline: stored statements → Kafka → Faust agents → sinks.

``relay`` publishes every stored statement from the statement store to ``xapi.statements``;
``app`` holds the Faust agents that enrich statements into learning events (``enrich``, with
ids from ``catalog``) and apply them to the sinks (``sinks/``); ``broker`` runs the embedded
Kafka-compatible broker. Positions (``position``) tie it together: every message carries the
statement store position it came from, and sinks record how far they got, so any part can
restart and catch up from the statement store.
"""
