# driftmart in one image: the model API (the default command), the Prometheus exporter, the Dagster
# webserver and daemon, and every `driftmart` command. compose.yaml runs them side by side on one
# home, the volume /data:
#
#   docker build -t driftmart .
#   docker run --rm -v driftmart-home:/data driftmart driftmart train      # the demo model
#   docker run -d -p 127.0.0.1:8000:8000 -v driftmart-home:/data driftmart  # the API on it
#
# A monitoring spec of your own: mount it and name it, e.g. -v "$PWD/specs:/specs:ro" with
# `--spec /specs/my_model.yaml`, or DRIFTMART_SPEC=/specs/my_model.yaml (README, "Containers").
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    DRIFTMART_HOME=/data \
    DAGSTER_HOME=/data/dagster

RUN groupadd --system --gid 10001 driftmart \
    && useradd --system --uid 10001 --gid driftmart --create-home --home-dir /home/driftmart \
        --shell /usr/sbin/nologin driftmart

WORKDIR /app
COPY pyproject.toml README.md ./
COPY ml ./ml
COPY orchestration ./orchestration
COPY warehouse ./warehouse
COPY dbt_project ./dbt_project
COPY deploy ./deploy

# The runtime dependencies only (no dev extras; `.[spark]` would add Spark, which also needs Java).
# Installed in place (-e): the dbt project is not a Python package, and orchestration/assets/dbt.py
# finds it beside the sources, so a plain wheel install would leave dbt without its project.
RUN pip install -e .

# dbt's manifest, parsed once at build time; dbt's run-time target and logs go to the home. The
# project folder belongs to the driftmart user all the same, in case dbt has to parse it again.
RUN python -c "from orchestration.assets.dbt import ensure_manifest; ensure_manifest()" \
    && rm -rf dbt_project/logs \
    && chown -R driftmart:driftmart dbt_project

# The home, with the Dagster instance that `driftmart run` and `driftmart ui` also use
# (orchestration/instance.py: one warehouse writer at a time). A new named volume on /data starts
# as a copy of this folder, owned by the driftmart user.
RUN python -c "from orchestration.instance import ensure_instance_dir; from warehouse.home import Home; \
ensure_instance_dir(Home.resolve('/data').ensure())" \
    && chown -R driftmart:driftmart /data

USER driftmart
VOLUME ["/data"]

# 8000 the model API (`driftmart serve`), 9108 the exporter (`driftmart metrics`), 3000 Dagster.
EXPOSE 8000 9108 3000

# The API's own health endpoint; compose.yaml gives the other services checks of their own.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"]

CMD ["driftmart", "serve", "--host", "0.0.0.0", "--port", "8000"]
