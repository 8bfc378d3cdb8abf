# One image for every Tipline process; docker-compose.yml picks the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md worker.py ./
COPY tipline tipline
COPY workflows workflows
COPY activities activities
COPY api api
COPY models models
COPY cybertipline cybertipline
COPY detection detection
RUN pip install --no-cache-dir .
RUN useradd --create-home tipline && mkdir /data && chown tipline /data
USER tipline
ENV TIPLINE_DATA_DIR=/data
# numba caches the compiled PDQ scan beside its source by default; site-packages is not writable here.
ENV NUMBA_CACHE_DIR=/tmp/numba-cache
ENTRYPOINT ["tipline"]
