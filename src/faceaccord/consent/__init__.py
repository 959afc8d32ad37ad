"""Consent, retention and erasure: why each person is enrolled, until when, and proof that
they are gone when they must be."""
