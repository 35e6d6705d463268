"""The kiosk touchscreen: a Textual app that talks to the agent only through the control socket."""
