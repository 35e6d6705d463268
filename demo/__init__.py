"""The README's demo (`make demo`): a coordinator and a simulated kiosk composed in one process.

This is the one package that imports both sides: `coordinator` and `appliance` never import each
other (the layers are in docs/architecture.md and enforced by `make lint`).
"""
