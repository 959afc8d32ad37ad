"""The deployment's use cases over the store: galleries, enrolment, identification, consent,
erasure, retention and takedown, each deciding by policy first and leaving an audit entry."""
