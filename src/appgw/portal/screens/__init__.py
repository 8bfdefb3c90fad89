"""One module per portal screen; each exposes register(app, portal)."""
