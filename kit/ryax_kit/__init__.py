"""The Ryax platform kit: plumbing written once for every service.

Services depend on it; it depends on no service. What is here is infrastructure (messaging,
web, database, filestore, crypto, YAML, logging) except `ryax_kit.core`, which holds
framework-free ports (clock, timers) that application layers may import. Domain code stays in
each service; `.proto` files stay producer-owned copies (proto-registry/).
"""

__version__ = "0.1.0"
