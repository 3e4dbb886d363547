"""Timing and quality runs (``make bench``); each prints what it measured and the machine it ran on."""
