"""The merchant portal (`/portal`): server-rendered pages for a merchant's own people."""
