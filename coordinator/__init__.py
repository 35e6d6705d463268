"""The burnstand coordinator: rendezvous REST API, balancer, session masters and pub/sub."""
