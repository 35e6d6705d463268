"""The burnstand appliance: the agent that owns the drives and the kiosk UI beside it."""
