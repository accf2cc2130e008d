"""Every query pgshift runs against PostgreSQL catalogs, version-gated here and nowhere else."""
