"""Payment channels: one adapter per channel behind one Protocol (`base.Channel`)."""
