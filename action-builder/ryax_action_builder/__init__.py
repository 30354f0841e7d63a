"""The Ryax action builder: builds action artefacts from ActionBuildRequested orders."""

__version__ = "0.1.0"
