"""Storage: ports (``ports``) and their adapters (``postgres``; MongoDB to come)."""
