# Immunity in a container: the one static binary, SQLite in /data, run as a user of its
# own. The runtime carries what releases are built and shipped with: git (checkouts)
# and openssh-client (the ssh deployer); an app whose build command needs a toolchain
# (go, node, ...) uses an image made FROM this one with that toolchain added.
#
#   docker build --build-arg VERSION=v1.2.3 --build-arg COMMIT=$(git rev-parse HEAD) -t immunity .
#   docker run -p 3102:3102 -v immunity-data:/data immunity
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
ARG COMMIT=""
# The README's build command, with the version stamped in.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.buildVersion=${VERSION} -X main.buildCommit=${COMMIT}" -o /immunity .

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin immunity \
 && install -d -o immunity -g immunity /data
COPY --from=build /immunity /usr/local/bin/immunity
USER immunity
ENV IMMUNITY_LISTEN=0.0.0.0:3102 IMMUNITY_LOG_FORMAT=json
VOLUME /data
WORKDIR /data
EXPOSE 3102
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["immunity", "healthcheck"]
ENTRYPOINT ["immunity"]
CMD ["serve"]
