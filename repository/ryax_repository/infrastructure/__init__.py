"""Adapters of the repository service (HTTP, database, messaging, git, YAML)."""
