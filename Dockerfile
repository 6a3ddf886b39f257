# One image for every HEAN service: `hean run <service>` picks which (see docker-compose.yml).
# Two stages: wheels are built with the full toolchain, the runtime stage only installs them and
# runs as an unprivileged user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY services ./services
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 hean
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER hean
WORKDIR /home/hean
ENV PYTHONUNBUFFERED=1 \
    HEAN_HOME=/home/hean/.hean \
    HEAN_METRICS_ADDR=0.0.0.0 \
    HEAN_METRICS_PORT=9100
EXPOSE 9100
ENTRYPOINT ["hean"]
CMD ["--help"]
