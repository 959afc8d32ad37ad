"""Template protection and signatures: envelope encryption of templates (a data key per
subject, wrapped by a master key) and Ed25519 signatures on audit checkpoints and receipts."""
