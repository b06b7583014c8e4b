"""Settings: one complete base plus thin overlays (local, test, production), values from the environment."""
