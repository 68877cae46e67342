# Keyzone's image: nothing but the static binary, so no base image is pulled.
# Build it with `make image`, which first builds bin/keyzone with CGO_ENABLED=0.
FROM scratch
COPY bin/keyzone /keyzone
# API, Raft, gossip (TCP and UDP).
EXPOSE 8200 8300 8400 8400/udp
VOLUME ["/data"]
ENV KEYZONE_DATA_DIR=/data \
    KEYZONE_API_ADDR=0.0.0.0:8200 \
    KEYZONE_RAFT_ADDR=0.0.0.0:8300 \
    KEYZONE_GOSSIP_ADDR=0.0.0.0:8400
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/keyzone", "health", "--addr", "http://127.0.0.1:8200", "--timeout", "2s"]
ENTRYPOINT ["/keyzone"]
CMD ["server"]
