"""What every worker and replica shares through Redis (``ASSIST_REDIS_URL``): the
per-user rate limits and single-use sign-in states, each falling back to this
process's own when Redis is not set or not answering."""
