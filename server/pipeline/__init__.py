"""One suggestion, stage by stage: context (redacted, weighted query), retrieval,
generation, aggregation into deltas, and the watchdog; the events they produce.
"""
