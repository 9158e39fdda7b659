"""HTTP routes, one module per area; each is a thin layer over `api.screening` and the engine."""
