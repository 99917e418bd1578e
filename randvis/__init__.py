"""randvis."""
