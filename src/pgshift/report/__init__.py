"""Rendering of findings, plans, run summaries and differences: console, JSON, Markdown, HTML.

Each command has its own module here; the helpers below are what they share.
"""
