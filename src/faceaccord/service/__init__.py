"""The HTTP service: the whole platform over FastAPI, with API keys, tenants, review queues and
RFC 9457 problem details. Built by ``create_app``; nothing happens at import."""
