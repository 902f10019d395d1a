"""A deterministic, in-process simulation of a zkserver ensemble (fake network, clock and disk)."""
