# The operator image: /manager and /mover, static, on an empty base, non-root.
# Both binaries embed the time-zone database and CA roots because the base has neither.
# `make image` builds the same layout without Docker (hack/image).
ARG BASE_IMAGE=golang:1.26
FROM ${BASE_IMAGE} AS builder
ARG TARGETOS
ARG TARGETARCH

WORKDIR /workspace
COPY go.mod go.mod
COPY go.sum go.sum
RUN go mod download

COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/

RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -ldflags=-s -o manager ./cmd/main.go && \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -ldflags=-s -o mover ./cmd/mover

FROM scratch
WORKDIR /
COPY --from=builder /workspace/manager /manager
COPY --from=builder /workspace/mover /mover
USER 65532:65532

ENTRYPOINT ["/manager"]
