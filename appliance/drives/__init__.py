"""Drives: discovery of burners and targets, and the backends that write to them."""
