"""The live assist routes: a request is admitted (rate limit, stream cap), run through the
pipeline, and streamed back as SSE (the page) or NDJSON (machines); feedback and the
audit log.
"""
