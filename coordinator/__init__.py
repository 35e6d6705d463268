"""The burnstand coordinator: rendezvous REST API, balancer, session masters and pub/sub."""

__version__ = "0.1.0"
