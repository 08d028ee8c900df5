"""Placeholder: the merchants helper fills this in."""
