"""Audit: a tamper-evident, hash-chained log of every decision, with signed checkpoints."""
