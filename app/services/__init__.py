"""Background services started from the lifespan, one small module per concern."""
