"""Finding, choosing, installing and running PostgreSQL client programs."""
