"""gateway context."""
