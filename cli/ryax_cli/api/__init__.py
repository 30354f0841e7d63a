"""The SDK, one module per service API."""
