# syntax=docker/dockerfile:1
# osemn as a sidecar image: `docker run -v ./osemn.yaml:/etc/osemn/osemn.yaml:ro -p 9108:9108 osemn`.
# The config must listen on 0.0.0.0:9108 (agent.listen) for the port to be reachable from
# outside the container; the relative default state URL lands in /var/lib/osemn (mount a volume
# there to keep history, watermarks, schema snapshots and drift references across restarts).

ARG PYTHON_VERSION=3.11

# --- build: the osemn wheel and wheels of every dependency ------------------------------------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --wheel-dir /wheels '.[postgres,mysql]'

# --- runtime: installed from those wheels only, no compilers, no sources ----------------------
FROM python:${PYTHON_VERSION}-slim
LABEL org.opencontainers.image.title="osemn" \
      org.opencontainers.image.description="Data-quality and observability agent: pandera checks as SQL, freshness, volume, Prometheus metrics" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# The wheels are bind-mounted, not copied, so they never become a layer of the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels 'osemn[postgres,mysql]' \
 && groupadd --system --gid 10001 osemn \
 && useradd --system --uid 10001 --gid osemn --home-dir /var/lib/osemn \
      --shell /usr/sbin/nologin osemn \
 && install -d -o osemn -g osemn /var/lib/osemn /etc/osemn
WORKDIR /var/lib/osemn
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=3)"
# Exec form: osemn is PID 1 and handles SIGTERM itself, so `docker stop` ends it cleanly.
ENTRYPOINT ["osemn"]
CMD ["run", "-c", "/etc/osemn/osemn.yaml"]
