"""Matching: comparing templates (1:1 verification now; 1:N identification behind the
``TemplateIndex`` port later)."""
