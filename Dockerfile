# polybot in a container: the live daemon (or the offline demo). Docs: docs/deploy.md.
#
#   docker build -t polybot .
#   docker run --rm polybot polybot run --config config/demo.toml       # offline demo
#   docker run -d --name polybot --restart on-failure --stop-timeout 60 \
#       --env-file /etc/polybot/secrets.env \
#       -v /etc/polybot/live.toml:/etc/polybot/polybot.toml:ro \
#       -v polybot-data:/data \
#       -v /var/lib/polybot/locks:/var/lib/polybot/locks \
#       polybot
#
# The live config must set `[engine] data_dir = "/data"` (the volume). Secrets come from the
# environment (--env-file, mode 0600 on the host), never from the image or the config.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    POLYBOT_LOCK_DIR=/var/lib/polybot/locks

RUN groupadd --system --gid 10001 polybot \
 && useradd --system --uid 10001 --gid polybot --home-dir /data --no-create-home --shell /usr/sbin/nologin polybot

WORKDIR /opt/polybot
COPY . .
# the package (non-editable) with the live executor's signing client; the source tree stays for
# the demo's config/ and recordings/ and for deploy/healthcheck.py
RUN pip install ".[live]" \
 && mkdir -p /data /etc/polybot /opt/polybot/var "$POLYBOT_LOCK_DIR" \
 && chown polybot:polybot /data /opt/polybot/var "$POLYBOT_LOCK_DIR" \
 && chmod 0700 /data "$POLYBOT_LOCK_DIR"

USER polybot
VOLUME ["/data"]

# SIGTERM = the clean shutdown (cancel open orders, drain, final snapshot, fsync). It can take
# over 10 s: stop with `docker stop -t 60` (or --stop-timeout 60 / compose stop_grace_period: 60s).
STOPSIGNAL SIGTERM

# /critical: 200 when all is well, 503 when trading is halted, a feed is down or a book unhealthy.
# The probe runs inside the container, so the API's default 127.0.0.1 is the right address: keep
# [api] host = "127.0.0.1" (enabled = true, port = 8321) and nothing is exposed outside it.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "/opt/polybot/deploy/healthcheck.py", "http://127.0.0.1:8321/critical"]

CMD ["polybot", "run", "--config", "/etc/polybot/polybot.toml"]
