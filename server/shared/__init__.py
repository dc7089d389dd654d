"""What every worker and replica shares through Redis (``ASSIST_REDIS_URL``): the
per-user rate limits, single-use sign-in states and supersede, each falling back to
this process's own when Redis is not set or not answering."""
