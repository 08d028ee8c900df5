"""merchants context."""
