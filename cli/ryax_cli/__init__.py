"""The `ryax` command line and the typed Python SDK over the Ryax HTTP APIs (`ryax_cli.sdk`)."""

__version__ = "0.1.0"
