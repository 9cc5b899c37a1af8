# syntax=docker/dockerfile:1
#
# scenestream images (deploy/README.md):
#   GPU (default):  docker build -t scenestream:gpu .
#   CPU only:       docker build --target cpu -t scenestream:cpu .
#
# The GPU image starts from NVIDIA's TensorRT container, release 25.08: TensorRT 10.13.2,
# CUDA 13.0, Ubuntu 24.04, Python 3.12; it needs an NVIDIA driver >= 580 on the host (or a
# data-centre driver with forward compatibility) and a GPU of compute capability >= 7.5.
# TensorRT engines are tied to the TensorRT version and the GPU: they are built on first start
# into the mounted cache (/cache) and loaded from it afterwards, so keep that volume.
# Bumping TRT_IMAGE changes the TensorRT version: expect one rebuild of the engines.

ARG TRT_IMAGE=nvcr.io/nvidia/tensorrt:25.08-py3
ARG CPU_IMAGE=python:3.12-slim-bookworm

# ---------------------------------------------------------------------------------------------
# CPU-only image: ONNX Runtime / PyTorch backends.
FROM ${CPU_IMAGE} AS cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Apt versions unpinned on purpose: the base image is pinned by tag, and pinned Debian package
# versions break the build at the next security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --user-group scenestream \
    && install -d -o 10001 -g 10001 /cache

WORKDIR /opt/scenestream
COPY pyproject.toml README.md ./
COPY stream ./stream
COPY engines ./engines

# torch from PyTorch's CPU index: the default index's build pulls CUDA libraries never used here.
RUN python -m venv /opt/venv \
    && pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
    && pip install . \
    && scenestream --version

COPY --chmod=755 deploy/docker/entrypoint.sh /usr/local/bin/scenestream-entrypoint

ENV SCENESTREAM_SERVER__HOST=0.0.0.0 \
    SCENESTREAM_SERVER__PORT=8080 \
    SCENESTREAM_ENGINES__CACHE_DIR=/cache \
    SCENESTREAM_ENGINES__BACKENDS='["onnxruntime","torch"]'

USER 10001:10001
VOLUME ["/cache"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SCENESTREAM_SERVER__PORT', '8080'), timeout=2)"]
ENTRYPOINT ["tini", "--", "scenestream-entrypoint"]
CMD ["serve"]

# ---------------------------------------------------------------------------------------------
# GPU image (default target): TensorRT first, ONNX Runtime and PyTorch as fallbacks.
FROM ${TRT_IMAGE} AS gpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --user-group scenestream \
    && install -d -o 10001 -g 10001 /cache

WORKDIR /opt/scenestream
COPY pyproject.toml README.md ./
COPY stream ./stream
COPY engines ./engines

# --system-site-packages: the venv sees the TensorRT Python bindings of the base image, so the
# TensorRT used is exactly the container's (the pip `tensorrt` extra is not installed).
# (Older TensorRT containers shipped the bindings uninstalled, behind python_setup.sh.)
RUN (python3 -c "import tensorrt" 2>/dev/null || /opt/tensorrt/python/python_setup.sh) \
    && python3 -m venv --system-site-packages /opt/venv \
    && pip install . \
    && python -c "import tensorrt; print('TensorRT', tensorrt.__version__)" \
    && scenestream --version

COPY --chmod=755 deploy/docker/entrypoint.sh /usr/local/bin/scenestream-entrypoint

ENV SCENESTREAM_SERVER__HOST=0.0.0.0 \
    SCENESTREAM_SERVER__PORT=8080 \
    SCENESTREAM_ENGINES__CACHE_DIR=/cache \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

USER 10001:10001
VOLUME ["/cache"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=600s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SCENESTREAM_SERVER__PORT', '8080'), timeout=2)"]
ENTRYPOINT ["tini", "--", "scenestream-entrypoint"]
CMD ["serve"]
