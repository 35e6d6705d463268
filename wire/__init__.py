"""Sans-I/O protocol cores shared by the coordinator and the appliance.

Nothing in this package opens a socket, starts a thread or touches asyncio: each module turns
bytes (or decoded JSON) into typed events and typed events back into bytes, so both sides and
the tests can drive it directly.
"""
