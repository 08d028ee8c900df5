"""The ecny channel sandbox: see the modules of this package."""
