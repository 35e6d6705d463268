"""Process plumbing that the coordinator and the appliance both need and neither owns.

It sits below both in the layers (see docs/architecture.md): sd_notify for systemd readiness and
the watchdog, and the one logging set-up every daemon uses. It imports nothing else of ours.
"""
