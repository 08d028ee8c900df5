"""The ecny channel: see the modules of this package."""
