"""Throwaway PostgreSQL servers for the demo, rehearsals, scenarios and tests."""

from pgshift.lab.server import LabServer, lab_server, start, stop_all

__all__ = ["LabServer", "lab_server", "start", "stop_all"]
