"""Governance: who may do what, for which purpose, where; decided by Cedar over policy packs
before any biometric processing, and explained with the rules and their sources."""
