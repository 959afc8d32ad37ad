"""The demographic fairness audit: error rates per group at one global threshold, with
subject-level bootstrap uncertainty, the way NIST (IR 8280) and ISO/IEC 19795-10 measure them."""
