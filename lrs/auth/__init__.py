"""Credentials (HTTP Basic, secrets stored hashed) and xAPI scopes."""
