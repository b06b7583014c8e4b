"""Pure terminology policies (no models, no database) that ingestion calls while it reads source data."""
