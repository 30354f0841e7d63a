"""Ryax repository service: git sources, scans, action sources, build requests."""
