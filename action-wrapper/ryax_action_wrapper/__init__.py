"""The Ryax action wrapper: serves ActionService (gRPC) around the code of one action."""

__version__ = "0.1.0"

#: The wrapper's runtime dependencies, pinned: the action builder installs exactly these next to
#: every action's own requirements (keep in step with pyproject.toml).
RUNTIME_REQUIREMENTS: tuple[str, ...] = (
    "grpcio==1.85.1",
    "grpcio-health-checking==1.85.1",
    "protobuf==7.36.2",
)
