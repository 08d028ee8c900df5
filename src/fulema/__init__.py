"""Fulema (付了码): an aggregated payment platform for banks and acquirers."""

__version__ = "0.1.0"
