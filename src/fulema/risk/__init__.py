"""risk context."""
