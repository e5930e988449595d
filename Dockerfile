# syntax=docker/dockerfile:1
# The ftpdlib command in a container (docs/deploy.md, "The container").
#
#   docker build -t ftpdlib .
#   docker run -d --name ftp -p 2121:2121 -p 30000-30009:30000-30009 \
#       -e FTPDLIB_NAT_ADDRESS=203.0.113.7 -v /srv/ftp:/srv/ftp:ro ftpdlib
#
# Settings: /etc/ftpdlib/ftpdlib.toml (dist/container.toml; mount your own over it), and
# FTPDLIB_* variables, which win over the file. `docker kill -s HUP ftp` reloads the file.

# ---- build: the release binary, linked against the system's libcrypt ----
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcrypt-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p ftpdlib-daemon \
 && strip target/release/ftpdlib

# ---- runtime: the binary and libcrypt, run as an unprivileged user ----
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcrypt1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 ftpdlib \
 && useradd --system --uid 10001 --gid ftpdlib --home-dir /srv/ftp --no-create-home \
        --shell /usr/sbin/nologin ftpdlib \
 && mkdir -p /srv/ftp /etc/ftpdlib \
 && chown ftpdlib:ftpdlib /srv/ftp
COPY --from=build /src/target/release/ftpdlib /usr/local/bin/ftpdlib
COPY dist/container.toml /etc/ftpdlib/ftpdlib.toml
ENV FTPDLIB_CONFIG=/etc/ftpdlib/ftpdlib.toml
USER ftpdlib
WORKDIR /srv/ftp
VOLUME ["/srv/ftp"]
# The control port and the passive range of dist/container.toml.
EXPOSE 2121 30000-30009
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ftpdlib"]
