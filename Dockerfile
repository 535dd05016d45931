# syntax=docker/dockerfile:1
# UniFi Scanner as a small container: a daemon that polls the controller, with a health check.
#   docker build -t unifi-scanner .
#   docker compose up -d          (see docker-compose.yml)

# ---- build: JBang bootstrapped the way ./jbang does (Maven from the distribution), tests, export, jlink ----
FROM eclipse-temurin:17-jdk AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends maven \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY jbang jbang-catalog.json UnifiScanner.java UnifiScannerTest.java ./
COPY ops/build-runtime ops/build-runtime
RUN ./jbang UnifiScannerTest.java
RUN ./ops/build-runtime /out

# ---- runtime: the jlink'd JRE and the exported jars, nothing else ----
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --create-home --home-dir /home/scanner scanner \
 && mkdir -p /data \
 && chown scanner /data
COPY --from=build /out/jre /opt/jre
COPY --from=build /out/app /opt/unifi-scanner
ENV JAVA_TOOL_OPTIONS="-XX:+UseSerialGC -XX:MaxRAMPercentage=75 -Dfile.encoding=UTF-8 -Dsun.stdout.encoding=UTF-8 -Dsun.stderr.encoding=UTF-8" \
    UNIFI_STATE_FILE=/data/state.json \
    UNIFI_REPORT_DIR=/data/reports \
    UNIFI_HEALTH_FILE=/tmp/unifi-scanner-health
USER scanner
VOLUME ["/data"]
ENTRYPOINT ["/opt/jre/bin/java", "-jar", "/opt/unifi-scanner/unifi-scanner.jar"]
CMD ["--daemon"]
HEALTHCHECK --interval=60s --timeout=20s --start-period=2m --retries=3 \
  CMD ["/opt/jre/bin/java", "-jar", "/opt/unifi-scanner/unifi-scanner.jar", "--health-check"]
