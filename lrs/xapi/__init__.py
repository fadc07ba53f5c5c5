"""The xAPI domain: statement models, formats, identity keys and comparison rules.

Nothing in this package does I/O; the HTTP layer and the use cases build on it.
"""
