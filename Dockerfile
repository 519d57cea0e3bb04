# sales-forecast: one image for both jobs.
#   serve (default):  docker run -p 127.0.0.1:8080:8080 -v models:/models IMAGE
#   train:            docker run -v models:/models IMAGE \
#                       python -m training --data /app/data/wineind.csv --model-dir /models
# Build with hack/build-image.sh (BuildKit, labels from git, optional CA bundle) or
#   DOCKER_BUILDKIT=1 docker build -t sales-forecast .
# No '# syntax=' line on purpose: it would make BuildKit pull a frontend image, and the
# frontend built into the engine (Docker 20.10 and later) already knows RUN --mount.

# The base must be a Debian bookworm with Python 3.11 and the venv module. Users get the
# official image; an offline build passes a local one (hack/base-image.sh makes it).
ARG BASE_IMAGE=python:3.11-slim-bookworm


FROM ${BASE_IMAGE} AS build

# The official image has python3 in /usr/local/bin, Debian's in /usr/bin: only the
# name 'python3' is common to both, and from here on the venv's python is used.
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

# Only the lock, so this slow layer is rebuilt when the pins change, not the code.
COPY requirements/runtime.txt /tmp/runtime.txt

# The CA bundle arrives as a BuildKit secret: mounted for this one RUN, never written
# to a layer, and absent from the build cache key. Without it pip uses its own CA
# list, which is what a machine with direct access to the package index needs.
# --only-binary: the slim base has no compiler, and wheels make the build repeatable.
# The cache mount keeps downloaded wheels between builds, outside every layer.
# Then: pip and setuptools leave (nothing installs at run time), and so do the test
# suites the wheels ship (pandas' alone is tens of MB; no runtime code imports them).
RUN --mount=type=secret,id=pip_ca \
    --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && pip install --only-binary=:all: --no-compile -r /tmp/runtime.txt \
    && pip uninstall --yes pip setuptools \
    && find /opt/venv -depth -type d \( -name tests -o -name __pycache__ \) \
        -exec rm -rf {} + \
    && python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv

# The application, byte-compiled here so a read-only root costs nothing at import.
# checked-hash, unlike the venv: a file synced into a dev container (skaffold dev)
# must win over its stale bytecode, and hashing this few sources costs milliseconds.
WORKDIR /app
COPY service/ /app/service/
COPY training/ /app/training/
COPY data/wineind.csv /app/data/wineind.csv
RUN python -m compileall -q --invalidation-mode checked-hash /app/service /app/training


FROM ${BASE_IMAGE} AS runtime

# A fixed numeric user, so Kubernetes' runAsUser/fsGroup and a host directory's owner
# can be set to the same number. /models belongs to it for a plain 'docker run'.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin app \
    && mkdir /models \
    && chown 10001:10001 /models

# The code belongs to root, so the service cannot change it. A development build
# (skaffold's dev profile syncs edited files in as the pod's user) passes
# APP_FILES_OWNER=10001:10001.
ARG APP_FILES_OWNER=0:0
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=${APP_FILES_OWNER} /app /app

# Writable paths at run time: /models and /tmp only. HOME points into /tmp because
# libraries keep caches and sockets there (matplotlib's font cache, gunicorn's control
# socket), and a user id with no passwd entry, as some clusters assign, has no home.
# PYTHONPATH lets 'python -m service|training' work from any working directory, as in
# a Kubernetes Job that sets its own workingDir.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    HOME=/tmp \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SALES_FORECAST_HOST=0.0.0.0 \
    SALES_FORECAST_PORT=8080 \
    SALES_FORECAST_MODEL_DIR=/models \
    PROMETHEUS_MULTIPROC_DIR=/tmp/metrics

WORKDIR /app
USER 10001:10001
VOLUME ["/models"]
EXPOSE 8080

# Exec form and no ENTRYPOINT: python execs gunicorn, so gunicorn is PID 1 and gets
# SIGTERM itself; and 'docker run IMAGE python -m training ...' or a Job's 'command:'
# replaces the whole command as it reads. Give 'docker stop' more time than
# SALES_FORECAST_GRACEFUL_TIMEOUT (20 s) with -t 30, or it kills after 10 s.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "service"]

# Last, so a new revision only changes this small layer of metadata.
ARG VERSION=0.0.0+unknown
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="sales-forecast" \
      org.opencontainers.image.description="Monthly sales forecasts: training job and HTTP service" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
