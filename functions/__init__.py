"""Cloud Functions: thin adapters over the processing core."""
