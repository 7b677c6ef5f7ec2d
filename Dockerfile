# tusk: release binary + ONNX Runtime + the committed models, in a slim Debian image.
# Mirrors scripts/setup-ort.sh (ONNX Runtime from the onnxruntime PyPI wheel).

FROM rust:1.95-bookworm AS build
# nasm assembles libjpeg-turbo's SIMD code; OpenCV (ORB, RANSAC) verifies re-posted photos, and the
# opencv crate generates its bindings with libclang (scripts/setup-build.sh)
RUN apt-get update && apt-get install -y --no-install-recommends nasm pkg-config libopencv-dev libclang-dev clang \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY pipeline ./pipeline
COPY tests ./tests
RUN cargo build --release --locked --bin tusk

FROM debian:bookworm-slim AS ort
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip unzip ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m pip download --no-deps --only-binary=:all: -d /tmp/wheel onnxruntime==1.31.1 \
    && unzip -j /tmp/wheel/onnxruntime-*.whl 'onnxruntime/capi/libonnxruntime.so.1.31.1' -d /tmp/ort

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
        libopencv-core406 libopencv-imgproc406 libopencv-features2d406 libopencv-calib3d406 libopencv-flann406 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=ort /tmp/ort/libonnxruntime.so.1.31.1 /usr/local/lib/
RUN ln -s libonnxruntime.so.1.31.1 /usr/local/lib/libonnxruntime.so && ldconfig
COPY --from=build /src/target/release/tusk /usr/local/bin/tusk
COPY models /opt/tusk/models
COPY datasets/demo /opt/tusk/datasets/demo
ENV TUSK_MODELS=/opt/tusk/models \
    ORT_DYLIB_PATH=/usr/local/lib/libonnxruntime.so
WORKDIR /work
# tusk serve --listen 0.0.0.0:8080 (the default listen address is loopback)
EXPOSE 8080
ENTRYPOINT ["tusk"]
CMD ["scan", "/opt/tusk/datasets/demo/manifest.jsonl", "--db", "/work/tusk.db", "--jsonl", "/work/tusk.jsonl"]
