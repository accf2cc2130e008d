"""Scenarios: declarative TOML files that run pgshift on throwaway servers and say what must come of it."""
