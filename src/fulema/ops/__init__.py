"""ops context."""
