"""Ryax authorization service: users, projects, memberships, roles and tokens."""
