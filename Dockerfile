# Immunity in a container: one binary, SQLite in /data. Builds of Go apps need the Go
# toolchain at run time, so the runtime image is Go's own.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /immunity .

FROM golang:1.26-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends git openssh-client ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /immunity /usr/local/bin/immunity
ENV IMMUNITY_LISTEN=0.0.0.0:3102
VOLUME /data
WORKDIR /data
EXPOSE 3102
ENTRYPOINT ["immunity"]
CMD ["serve"]
