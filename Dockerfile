# Assist Panel: the production server (docs/deploy.md).
#   docker build -t assist-panel .
#   docker run -p 8000:8000 -e ASSIST_SESSION_SECRET=... -e ASSIST_ALLOWED_ORGS=... \
#     -e ASSIST_OAUTH_CLIENT_ID=... assist-panel
# It serves the sample knowledge base built into the image until ASSIST_KB_PATH names
# your own store or snapshot directory (a mounted volume).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The wheel: the server with its page, sample knowledge base and manifest inside.
COPY pyproject.toml README.md /tmp/src/
COPY server /tmp/src/server
COPY bench /tmp/src/bench
COPY tests /tmp/src/tests
COPY frontend/static /tmp/src/frontend/static
COPY frontend/templates /tmp/src/frontend/templates
COPY kb/sample /tmp/src/kb/sample
COPY manifest /tmp/src/manifest
RUN python -m venv /opt/assist-panel \
    && /opt/assist-panel/bin/pip install /tmp/src \
    && rm -rf /tmp/src \
    && useradd --system --uid 10001 --home-dir /var/lib/assist-panel --create-home assist

ENV PATH=/opt/assist-panel/bin:$PATH
ENV ASSIST_HOST=0.0.0.0 ASSIST_PORT=8000 ASSIST_KB_PATH=/var/lib/assist-panel/sample.db

USER 10001
WORKDIR /var/lib/assist-panel
# The sample knowledge base, indexed (passages and vectors) when the image is built.
RUN assist-panel kb import "$(python -c 'from server.paths import sample_kb_dir; print(sample_kb_dir())')" --db /var/lib/assist-panel/sample.db

EXPOSE 8000
# /healthz answers while the event loop does; readiness (/readyz) is the orchestrator's.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# SIGTERM reaches the server itself (exec form, no shell in between): every open
# stream gets its final events and done within ASSIST_SHUTDOWN_GRACE_S.
STOPSIGNAL SIGTERM
ENTRYPOINT ["assist-panel"]
CMD ["serve"]
