"""A Genesys Cloud simulator that serves the real API paths from a scenario file."""
