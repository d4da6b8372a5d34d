"""Sweep tests (``ocrtune/sweep/``): one module per part of the package."""
