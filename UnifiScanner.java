///usr/bin/env jbang "$0" "$@" ; exit $?
//JAVA 17+
//JAVA_OPTIONS -XX:+UseSerialGC -Xms16m -Dfile.encoding=UTF-8 -Dsun.stdout.encoding=UTF-8 -Dsun.stderr.encoding=UTF-8
//COMPILE_OPTIONS -encoding UTF-8
//DEPS info.picocli:picocli:4.7.7
//DEPS dev.failsafe:failsafe:3.3.2
//DEPS com.fasterxml.jackson.core:jackson-databind:2.20.1
//DEPS com.fasterxml.jackson.dataformat:jackson-dataformat-yaml:2.20.1
//DEPS org.eclipse.angus:angus-mail:2.0.3

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import dev.failsafe.Failsafe;
import dev.failsafe.FailsafeException;
import dev.failsafe.RetryPolicy;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedTrustManager;
import javax.net.ssl.X509TrustManager;
import java.io.IOException;
import java.io.PrintStream;
import java.net.ConnectException;
import java.net.Socket;
import java.net.URI;
import java.net.UnknownHostException;
import java.net.http.HttpClient;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpHeaders;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.ByteBuffer;
import java.nio.channels.UnresolvedAddressException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyStore;
import java.security.MessageDigest;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Flow;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * UniFi Scanner: logs into a UniFi controller and says, in plain English, what happened.
 *
 * The file reads in the order data flows: outcomes and logging, configuration, TLS, the controller
 * client (detection, login, retries, session expiry), the health file, the banner, and the CLI.
 */
public class UnifiScanner {

    static final String NAME = "UniFi Scanner";
    static final String VERSION = "0.1.0";
    static final ObjectMapper JSON = new ObjectMapper();

    public static void main(String[] args) {
        ShutdownGuard guard = new ShutdownGuard();
        Runtime.getRuntime().addShutdownHook(new Thread(guard::onSignal, "unifi-scanner-shutdown"));
        int code = Cli.run(args, System.getenv(), System.out, System.err, guard);
        guard.finished();
        System.exit(code);
    }

    // =====================================================================================
    // Outcomes: exit codes and the one-line errors that carry them
    // =====================================================================================

    static final int EXIT_OK = 0, EXIT_CONFIG = 1, EXIT_CONNECTION = 2, EXIT_AUTH = 3, EXIT_FINDINGS = 4, EXIT_LOCKED = 5;

    /** A failure the user can act on: its message is the one line they see, its code the exit code. */
    static class ScannerException extends RuntimeException {
        final int exitCode;

        ScannerException(int exitCode, String message) {
            super(message, null, false, false); // no stack trace: the message is the whole story
            this.exitCode = exitCode;
        }
    }

    static final class ConfigException extends ScannerException {
        ConfigException(String message) { super(EXIT_CONFIG, message); }
    }

    static class ConnectionException extends ScannerException {
        ConnectionException(String message) { super(EXIT_CONNECTION, message); }
    }

    /** The controller answered, but not with what was asked for (404/400, error envelope, not JSON). */
    static final class ApiException extends ConnectionException {
        final int status;

        ApiException(int status, String message) {
            super(message);
            this.status = status;
        }

        /** 404 or 400: the controller version lacks this endpoint; later code treats this as "not available". */
        boolean endpointMissing() { return status == 404 || status == 400; }
    }

    static final class AuthException extends ScannerException {
        AuthException(String message) { super(EXIT_AUTH, message); }
    }

    // =====================================================================================
    // Logging: stderr, text or JSON lines, every line scrubbed of known secrets
    // =====================================================================================

    enum Level { DEBUG, INFO, WARN, ERROR }

    static final class Log {
        private final PrintStream err;
        private final Set<String> secrets = ConcurrentHashMap.newKeySet();
        private volatile Level level = Level.INFO;
        private volatile boolean json;

        Log(PrintStream err) { this.err = err; }

        void configure(Level level, boolean json) {
            this.level = level;
            this.json = json;
        }

        /**
         * Registers a value that must never be printed (password, key, cookie, CSRF token). Messages are built
         * without secrets in the first place; this scrub is the second line of defence. Values under 4 characters
         * are not scrubbed: replacing every "x" would garble the line that tells the user what went wrong.
         */
        void secret(String value) {
            if (value != null && value.length() >= 4) secrets.add(value);
        }

        String scrub(String text) {
            String out = text == null ? "" : text;
            for (String s : secrets) out = out.replace(s, "****");
            return out;
        }

        void debug(String msg) { log(Level.DEBUG, msg); }
        void info(String msg) { log(Level.INFO, msg); }
        void warn(String msg) { log(Level.WARN, msg); }
        void error(String msg) { log(Level.ERROR, msg); }

        boolean enabled(Level l) { return l.compareTo(level) >= 0; }

        synchronized void log(Level l, String msg) {
            if (!enabled(l)) return;
            String clean = scrub(msg).replace('\n', ' ');
            String time = Instant.now().truncatedTo(ChronoUnit.MILLIS).toString();
            if (json) {
                ObjectNode line = JSON.createObjectNode().put("time", time).put("level", l.name()).put("message", clean);
                err.println(line.toString());
            } else {
                err.println(time + " " + l.name() + " " + clean);
            }
        }
    }

    // =====================================================================================
    // Configuration: one table of settings drives the options, the environment, the YAML file and help
    // =====================================================================================

    /** One setting: its option/YAML key, environment name, default (null = none) and whether it is secret. */
    record Setting(String key, String env, String label, String defaultValue, boolean secret, String help) {}

    static final List<Setting> SETTINGS = List.of(
            new Setting("host", "UNIFI_HOST", "HOST", null, false, "Controller address: host name, IP or https://host:port URL."),
            new Setting("port", "UNIFI_PORT", "PORT", null, false, "Controller port. Unset: try 443, 8443, 11443 in that order."),
            new Setting("username", "UNIFI_USERNAME", "USER", null, false, "Local controller account (no MFA)."),
            new Setting("password", "UNIFI_PASSWORD", "PASSWORD", null, true, "Password of that account. Prefer UNIFI_PASSWORD_FILE."),
            new Setting("api-key", "UNIFI_API_KEY", "KEY", null, true, "UniFi OS API key, instead of username and password."),
            new Setting("site", "UNIFI_SITE", "SITE", null, false, "Site name or description. Unset: the only site."),
            new Setting("controller-type", "UNIFI_CONTROLLER_TYPE", "TYPE", "auto", false, "auto, unifi-os or classic."),
            new Setting("verify-ssl", "UNIFI_VERIFY_SSL", "BOOL", "true", false, "Verify the controller's TLS certificate."),
            new Setting("cert-fingerprint", "UNIFI_CERT_FINGERPRINT", "sha256:HEX", null, false, "Trust exactly the certificate with this SHA-256 fingerprint."),
            new Setting("connect-timeout", "UNIFI_CONNECT_TIMEOUT", "DURATION", "10s", false, "Connect timeout; a whole request may take 3 times this."),
            new Setting("max-retries", "UNIFI_MAX_RETRIES", "N", "5", false, "Retries of a failed request."),
            new Setting("retry-initial-delay", "UNIFI_RETRY_INITIAL_DELAY", "DURATION", "1s", false, "First retry delay; doubles each retry."),
            new Setting("retry-max-delay", "UNIFI_RETRY_MAX_DELAY", "DURATION", "60s", false, "Longest retry delay; also the wait after a rate-limited login."),
            new Setting("poll-interval", "UNIFI_POLL_INTERVAL", "DURATION", "5m", false, "Time between polls; sets the health file's staleness limit."),
            new Setting("health-file", "UNIFI_HEALTH_FILE", "FILE", "/tmp/unifi-scanner-health", false, "Health file for container health checks."),
            new Setting("state-file", "UNIFI_STATE_FILE", "FILE", null, false, "Where the last run stopped. Default: $XDG_STATE_HOME/unifi-scanner/state.json (or ~/.local/state/...)."),
            new Setting("initial-lookback-hours", "UNIFI_INITIAL_LOOKBACK_HOURS", "HOURS", "24", false, "How far the first run looks back."),
            new Setting("thresholds", "UNIFI_THRESHOLDS", "LIST", "temperature=70/80,cpu=85/95,memory=90/97,poe=80/95,uptime=180/365", false,
                    "Device-health warning/critical levels (°C, %, % of PoE budget, days)."),
            new Setting("report-dir", "UNIFI_REPORT_DIR", "DIR", null, false, "Also write each report into this folder."),
            new Setting("report-formats", "UNIFI_REPORT_FORMATS", "LIST", "txt,html,json", false, "Formats written to the report folder: txt, html, json."),
            new Setting("report-retention-days", "UNIFI_REPORT_RETENTION_DAYS", "DAYS", "30", false, "Delete this tool's report files older than this (0: keep)."),
            new Setting("smtp-host", "UNIFI_SMTP_HOST", "HOST", null, false, "Mail the report through this SMTP server."),
            new Setting("smtp-port", "UNIFI_SMTP_PORT", "PORT", null, false, "SMTP port. Default: 587 (starttls), 465 (implicit), 25 (none)."),
            new Setting("smtp-username", "UNIFI_SMTP_USERNAME", "USER", null, false, "SMTP account, if the server needs one."),
            new Setting("smtp-password", "UNIFI_SMTP_PASSWORD", "PASSWORD", null, true, "Its password. Prefer UNIFI_SMTP_PASSWORD_FILE."),
            new Setting("smtp-tls", "UNIFI_SMTP_TLS", "MODE", "starttls", false, "starttls, implicit or none."),
            new Setting("email-from", "UNIFI_EMAIL_FROM", "ADDRESS", null, false, "Sender address of the report mail."),
            new Setting("email-to", "UNIFI_EMAIL_TO", "LIST", null, false, "Recipients, comma-separated."),
            new Setting("webhook-url", "UNIFI_WEBHOOK_URL", "URL", null, true, "POST each report to this URL (kept secret: it often holds a token)."),
            new Setting("webhook-format", "UNIFI_WEBHOOK_FORMAT", "STYLE", "generic", false, "generic (the JSON report), slack, discord or ntfy."),
            new Setting("log-level", "UNIFI_LOG_LEVEL", "LEVEL", "info", false, "debug, info, warn or error."),
            new Setting("log-format", "UNIFI_LOG_FORMAT", "FORMAT", "text", false, "text or json."));

    static Setting setting(String key) {
        return SETTINGS.stream().filter(s -> s.key().equals(key)).findFirst().orElseThrow();
    }

    enum ControllerType { AUTO, UNIFI_OS, CLASSIC }

    /** The validated configuration. Secrets are held but never shown: see toString. */
    record Config(String scheme, String host, Integer port, String username, String password, String apiKey,
                  String site, ControllerType controllerType, boolean verifySsl, String certFingerprint,
                  Duration connectTimeout, int maxRetries, Duration retryInitialDelay, Duration retryMaxDelay,
                  Duration pollInterval, Path healthFile, Level logLevel, boolean logJson, Path stateFile,
                  int initialLookbackHours, List<Threshold> thresholds, Delivery delivery) {

        boolean usesApiKey() { return apiKey != null; }

        /** The saved controller session lives beside the state, with the same 0600 care. */
        Path sessionFile() { return stateFile.resolveSibling("session.json"); }

        @Override
        public String toString() {
            return "Config[" + scheme + "://" + host + (port == null ? "" : ":" + port) + ", username=" + username
                    + ", password=" + (password == null ? "unset" : "****") + ", apiKey=" + (apiKey == null ? "unset" : "****")
                    + ", site=" + site + ", type=" + controllerType + ", verifySsl=" + verifySsl + "]";
        }
    }

    record Smtp(String host, int port, String username, String password, String tls, String from, List<String> to) {
        @Override public String toString() { return "Smtp[" + host + ":" + port + ", tls=" + tls + ", user=" + username + ", password=" + (password == null ? "unset" : "****") + "]"; }
    }

    record Delivery(Path reportDir, List<Format> reportFormats, int retentionDays, Smtp smtp, String webhookUrl, String webhookFormat) {
        @Override public String toString() { return "Delivery[dir=" + reportDir + ", smtp=" + smtp + ", webhook=" + (webhookUrl == null ? "unset" : "****") + "]"; }
    }

    static <T> List<T> concat(List<T> a, List<T> b) {
        List<T> out = new ArrayList<>(a);
        out.addAll(b);
        return out;
    }

    /** A raw setting value and where it came from, so errors can name the source the user must fix. */
    record Raw(String value, String origin) {}

    static final class ConfigLoader {
        /**
         * Merges command-line values, the environment (with UNIFI_X_FILE secrets) and the YAML file, highest first,
         * then validates. Nothing here touches the network.
         */
        static Config load(Map<String, String> cli, Path configFile, Map<String, String> env) {
            Map<String, Raw> merged = new LinkedHashMap<>();
            Path yaml = configFile != null ? configFile
                    : env.get("CONFIG_PATH") != null && !env.get("CONFIG_PATH").isBlank() ? Path.of(env.get("CONFIG_PATH")) : null;
            if (yaml != null) merged.putAll(readYaml(yaml));
            for (Setting s : SETTINGS) {
                String v = fromEnv(env, s.env());
                if (v != null) merged.put(s.key(), new Raw(v, s.env()));
            }
            cli.forEach((k, v) -> merged.put(k, new Raw(v, "--" + k)));
            merged.putIfAbsent("state-file", new Raw(defaultStateFile(env).toString(), "default"));
            return validate(merged);
        }

        static Path defaultStateFile(Map<String, String> env) {
            String xdg = blankToNull(env.get("XDG_STATE_HOME"));
            Path base = xdg != null ? Path.of(xdg) : Path.of(Optional.ofNullable(blankToNull(env.get("HOME"))).orElse(System.getProperty("user.home")), ".local", "state");
            return base.resolve("unifi-scanner").resolve("state.json");
        }

        /** UNIFI_X, or the content of the file named by UNIFI_X_FILE (trailing newline stripped). */
        static String fromEnv(Map<String, String> env, String name) {
            String direct = blankToNull(env.get(name));
            String file = blankToNull(env.get(name + "_FILE"));
            if (direct != null && file != null)
                throw new ConfigException("both " + name + " and " + name + "_FILE are set: keep only one");
            if (file == null) return direct;
            try {
                String content = Files.readString(Path.of(file), StandardCharsets.UTF_8);
                return content.replaceAll("\\r?\\n$", "");
            } catch (IOException | RuntimeException e) {
                throw new ConfigException("cannot read " + name + "_FILE '" + file + "' (" + describeIo(e) + "): check the path and its permissions");
            }
        }

        static Map<String, Raw> readYaml(Path file) {
            Map<String, Raw> out = new LinkedHashMap<>();
            String where = file.toString();
            try (JsonParser p = new YAMLFactory().createParser(Files.newBufferedReader(file, StandardCharsets.UTF_8))) {
                JsonToken t = p.nextToken();
                if (t == null) return out; // empty file
                if (t != JsonToken.START_OBJECT)
                    throw new ConfigException("config file " + where + " line " + p.currentLocation().getLineNr() + ": expected 'key: value' lines");
                while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
                    int line = p.currentLocation().getLineNr();
                    String key = p.currentName().trim().toLowerCase(Locale.ROOT).replace('_', '-');
                    JsonToken v = p.nextToken();
                    if (SETTINGS.stream().noneMatch(s -> s.key().equals(key)))
                        throw new ConfigException("config file " + where + " line " + line + ": unknown key '" + p.currentName()
                                + "' (known: " + String.join(", ", SETTINGS.stream().map(Setting::key).toList()) + ")");
                    if (v == JsonToken.START_OBJECT || v == JsonToken.START_ARRAY)
                        throw new ConfigException("config file " + where + " line " + line + ": '" + key + "' must be a single value");
                    if (v != JsonToken.VALUE_NULL) out.put(key, new Raw(p.getText(), where + " line " + line));
                }
                return out;
            } catch (JsonProcessingException e) {
                String why = e.getOriginalMessage() == null ? "malformed YAML" : e.getOriginalMessage().split("\n")[0];
                throw new ConfigException("config file " + where + " line " + e.getLocation().getLineNr() + " is not valid YAML: " + why);
            } catch (IOException e) {
                throw new ConfigException("cannot read config file " + where + " (" + describeIo(e) + ")");
            }
        }

        static Config validate(Map<String, Raw> raw) {
            Raw hostRaw = raw.get("host");
            if (hostRaw == null)
                throw new ConfigException("no controller address: set UNIFI_HOST (or --host) to its IP or name, e.g. UNIFI_HOST=192.168.1.1");
            String scheme = "https", host = hostRaw.value().trim();
            Integer port = null;
            if (host.contains("://")) {
                URI uri;
                try {
                    uri = URI.create(host);
                } catch (IllegalArgumentException e) {
                    throw bad(hostRaw, "host", "is not a valid URL");
                }
                scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
                if (!scheme.equals("https") && !scheme.equals("http")) throw bad(hostRaw, "host", "must use https://");
                if (uri.getHost() == null) throw bad(hostRaw, "host", "has no host name");
                if (uri.getPath() != null && !uri.getPath().isEmpty() && !uri.getPath().equals("/"))
                    throw bad(hostRaw, "host", "must not have a path: give only https://host:port");
                host = uri.getHost();
                if (uri.getPort() != -1) port = uri.getPort();
            } else if (host.isEmpty() || host.contains("/") || host.contains(" ")) {
                throw bad(hostRaw, "host", "is not a host name or IP address");
            }
            if (host.startsWith("[") && host.endsWith("]")) host = host.substring(1, host.length() - 1);
            if (raw.containsKey("port")) port = intIn(raw.get("port"), "port", 1, 65535);

            String username = value(raw, "username"), password = value(raw, "password"), apiKey = value(raw, "api-key");
            if (apiKey == null && password == null)
                throw new ConfigException("no credentials: set UNIFI_USERNAME and UNIFI_PASSWORD (a local account without MFA), or UNIFI_API_KEY");
            if (apiKey == null && username == null)
                throw new ConfigException("UNIFI_PASSWORD is set but UNIFI_USERNAME is not: set the local account's user name");

            ControllerType type = switch (value(raw, "controller-type").toLowerCase(Locale.ROOT)) {
                case "auto" -> ControllerType.AUTO;
                case "unifi-os", "unifios", "udm" -> ControllerType.UNIFI_OS;
                case "classic" -> ControllerType.CLASSIC;
                default -> throw bad(raw.get("controller-type"), "controller-type", "must be auto, unifi-os or classic");
            };
            if (apiKey != null && type == ControllerType.CLASSIC)
                throw new ConfigException("an API key works only on UniFi OS controllers, but UNIFI_CONTROLLER_TYPE is classic: use a username and password");

            String pin = value(raw, "cert-fingerprint");
            if (pin != null) {
                String hex = Tls.normalizeFingerprint(pin);
                if (!hex.matches("[0-9a-f]{64}"))
                    throw bad(raw.get("cert-fingerprint"), "cert-fingerprint", "must be a SHA-256 fingerprint: sha256: and 64 hex digits (colons allowed)");
                pin = hex;
            }
            Duration connect = duration(raw, "connect-timeout"), initial = duration(raw, "retry-initial-delay");
            Duration max = duration(raw, "retry-max-delay"), poll = duration(raw, "poll-interval");
            if (connect.isZero()) throw bad(rawOrDefault(raw, "connect-timeout"), "connect-timeout", "must be more than 0");
            if (poll.isZero()) throw bad(rawOrDefault(raw, "poll-interval"), "poll-interval", "must be more than 0");
            if (max.compareTo(initial) < 0)
                throw new ConfigException("retry-max-delay (" + Durations.format(max) + ") is shorter than retry-initial-delay (" + Durations.format(initial) + ")");
            Level level = switch (value(raw, "log-level").toLowerCase(Locale.ROOT)) {
                case "debug" -> Level.DEBUG;
                case "info" -> Level.INFO;
                case "warn", "warning" -> Level.WARN;
                case "error" -> Level.ERROR;
                default -> throw bad(raw.get("log-level"), "log-level", "must be debug, info, warn or error");
            };
            boolean logJson = switch (value(raw, "log-format").toLowerCase(Locale.ROOT)) {
                case "text" -> false;
                case "json" -> true;
                default -> throw bad(raw.get("log-format"), "log-format", "must be text or json");
            };
            return new Config(scheme, host, port, username, password, apiKey, value(raw, "site"), type,
                    bool(raw, "verify-ssl"), pin, connect, intIn(rawOrDefault(raw, "max-retries"), "max-retries", 0, 100),
                    initial, max, poll, Path.of(value(raw, "health-file")), level, logJson, Path.of(value(raw, "state-file")),
                    intIn(rawOrDefault(raw, "initial-lookback-hours"), "initial-lookback-hours", 1, 24 * 365), thresholds(rawOrDefault(raw, "thresholds")),
                    delivery(raw));
        }

        /** Where reports go besides stdout: a folder, mail, a webhook. Each is off unless configured. */
        static Delivery delivery(Map<String, Raw> raw) {
            String dir = value(raw, "report-dir");
            List<Format> formats = new ArrayList<>();
            for (String f : value(raw, "report-formats").split(",")) {
                Format format = switch (f.trim().toLowerCase(Locale.ROOT)) {
                    case "txt", "text" -> Format.TEXT;
                    case "html" -> Format.HTML;
                    case "json" -> Format.JSON;
                    default -> throw bad(raw.get("report-formats"), "report-formats", "must list txt, html and/or json");
                };
                if (!formats.contains(format)) formats.add(format);
            }
            Smtp smtp = null;
            String smtpHost = value(raw, "smtp-host");
            if (smtpHost != null) {
                String tls = value(raw, "smtp-tls").toLowerCase(Locale.ROOT);
                if (!List.of("starttls", "implicit", "none").contains(tls)) throw bad(raw.get("smtp-tls"), "smtp-tls", "must be starttls, implicit or none");
                int port = raw.containsKey("smtp-port") ? intIn(raw.get("smtp-port"), "smtp-port", 1, 65535) : tls.equals("implicit") ? 465 : tls.equals("none") ? 25 : 587;
                String from = value(raw, "email-from"), to = value(raw, "email-to");
                if (from == null || to == null)
                    throw new ConfigException("UNIFI_SMTP_HOST is set, so UNIFI_EMAIL_FROM and UNIFI_EMAIL_TO are needed too (who sends, who receives)");
                List<String> recipients = List.of(to.split(",")).stream().map(String::trim).filter(t -> !t.isEmpty()).toList();
                for (String address : concat(recipients, List.of(from))) {
                    if (!address.matches("[^@\\s,<>]+@[^@\\s,<>]+"))
                        throw new ConfigException("'" + address + "' (UNIFI_EMAIL_FROM / UNIFI_EMAIL_TO) is not an e-mail address like name@example.com");
                }
                smtp = new Smtp(smtpHost, port, value(raw, "smtp-username"), value(raw, "smtp-password"), tls, from, recipients);
            }
            String webhook = value(raw, "webhook-url");
            if (webhook != null && !webhook.matches("(?i)https?://\\S+"))
                throw new ConfigException("webhook-url (from " + raw.get("webhook-url").origin() + ") must be an http:// or https:// URL");
            String style = value(raw, "webhook-format").toLowerCase(Locale.ROOT);
            if (!List.of("generic", "slack", "discord", "ntfy").contains(style))
                throw bad(raw.get("webhook-format"), "webhook-format", "must be generic, slack, discord or ntfy");
            return new Delivery(dir == null ? null : Path.of(dir), formats, intIn(rawOrDefault(raw, "report-retention-days"), "report-retention-days", 0, 36_500),
                    smtp, webhook, style);
        }

        /** "temperature=70/80,cpu=85/95": overrides of DEFAULT_THRESHOLDS, warning/critical. */
        static List<Threshold> thresholds(Raw r) {
            Map<String, Threshold> out = new LinkedHashMap<>();
            DEFAULT_THRESHOLDS.forEach(t -> out.put(t.metric(), t));
            for (String part : r.value().split(",")) {
                if (part.isBlank()) continue;
                Matcher m = Pattern.compile("\\s*(\\w+)\\s*=\\s*(\\d+(?:\\.\\d+)?)\\s*/\\s*(\\d+(?:\\.\\d+)?)\\s*").matcher(part);
                Threshold t = m.matches() ? out.get(m.group(1).toLowerCase(Locale.ROOT)) : null;
                if (t == null || Double.parseDouble(m.group(2)) > Double.parseDouble(m.group(3)))
                    throw bad(r, "thresholds", "must look like temperature=70/80,cpu=85/95 (metrics: " + String.join(", ", out.keySet())
                            + "; warning before critical)");
                out.put(t.metric(), new Threshold(t.metric(), t.label(), Double.parseDouble(m.group(2)), Double.parseDouble(m.group(3)), t.atWarning(), t.atCritical(), t.unit()));
            }
            return List.copyOf(out.values());
        }

        private static Raw rawOrDefault(Map<String, Raw> raw, String key) {
            Raw r = raw.get(key);
            if (r != null && !r.value().isBlank()) return r;
            String d = setting(key).defaultValue();
            return d == null ? null : new Raw(d, "default");
        }

        private static String value(Map<String, Raw> raw, String key) {
            Raw r = rawOrDefault(raw, key);
            return r == null ? null : r.value().trim();
        }

        private static boolean bool(Map<String, Raw> raw, String key) {
            Raw r = rawOrDefault(raw, key);
            return switch (r.value().trim().toLowerCase(Locale.ROOT)) {
                case "true", "yes", "1", "on" -> true;
                case "false", "no", "0", "off" -> false;
                default -> throw bad(r, key, "must be true or false");
            };
        }

        private static int intIn(Raw r, String key, int min, int max) {
            try {
                int v = Integer.parseInt(r.value().trim());
                if (v >= min && v <= max) return v;
            } catch (NumberFormatException ignored) { /* reported below */ }
            throw bad(r, key, "must be a whole number from " + min + " to " + max);
        }

        private static Duration duration(Map<String, Raw> raw, String key) {
            Raw r = rawOrDefault(raw, key);
            try {
                return Durations.parse(r.value());
            } catch (IllegalArgumentException e) {
                throw bad(r, key, "is not a duration: use e.g. 90, 90s, 5m, 0.2s");
            }
        }

        private static ConfigException bad(Raw r, String key, String problem) {
            Setting s = setting(key);
            String shown = s.secret() ? "" : " '" + r.value() + "'";
            return new ConfigException(key + shown + " (from " + r.origin() + ") " + problem);
        }
    }

    static final class Durations {
        private static final Pattern FORM = Pattern.compile("^(\\d+(?:\\.\\d+)?)\\s*(ms|s|m|h)?$");

        /** "90" and "90s" are seconds; "5m", "1h", "0.2s", "250ms" as written. */
        static Duration parse(String text) {
            Matcher m = FORM.matcher(text == null ? "" : text.trim().toLowerCase(Locale.ROOT));
            if (!m.matches()) throw new IllegalArgumentException("not a duration: " + text);
            double n = Double.parseDouble(m.group(1));
            String unit = m.group(2) == null ? "s" : m.group(2);
            double millis = n * switch (unit) {
                case "ms" -> 1;
                case "s" -> 1_000;
                case "m" -> 60_000;
                default -> 3_600_000;
            };
            return Duration.ofMillis(Math.round(millis));
        }

        static String format(Duration d) {
            long ms = d.toMillis();
            if (ms < 1_000) return ms + "ms";
            if (ms % 3_600_000 == 0) return ms / 3_600_000 + "h";
            if (ms % 60_000 == 0) return ms / 60_000 + "m";
            if (ms < 60_000) return String.format(Locale.ROOT, "%.1fs", ms / 1000.0).replace(".0s", "s");
            return ms / 60_000 + "m" + (ms % 60_000) / 1000 + "s";
        }
    }

    // =====================================================================================
    // TLS: verify by default, or pin one certificate by its SHA-256 fingerprint; always remember what was shown
    // =====================================================================================

    static final class Tls extends X509ExtendedTrustManager {
        enum Mode { VERIFY, PIN, INSECURE }

        private final Mode mode;
        private final String pin; // normalized hex, PIN mode only
        private final X509ExtendedTrustManager system;
        private final AtomicReference<X509Certificate> presented = new AtomicReference<>();
        private volatile boolean pinMismatch;

        Tls(Config config, X509TrustManager trustRoots) {
            this.mode = config.certFingerprint() != null ? Mode.PIN : config.verifySsl() ? Mode.VERIFY : Mode.INSECURE;
            this.pin = config.certFingerprint();
            X509TrustManager roots = trustRoots != null ? trustRoots : systemTrust();
            if (!(roots instanceof X509ExtendedTrustManager extended))
                throw new IllegalArgumentException("trust roots must come from a TrustManagerFactory (X509ExtendedTrustManager)");
            this.system = extended;
        }

        static X509TrustManager systemTrust() {
            try {
                TrustManagerFactory f = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
                f.init((KeyStore) null);
                for (TrustManager tm : f.getTrustManagers()) if (tm instanceof X509TrustManager x) return x;
                throw new IllegalStateException("no X509 trust manager");
            } catch (Exception e) {
                throw new IllegalStateException("cannot load the system's trusted certificates", e);
            }
        }

        SSLContext context() {
            try {
                SSLContext ctx = SSLContext.getInstance("TLS");
                ctx.init(null, new TrustManager[]{this}, null);
                return ctx;
            } catch (Exception e) {
                throw new IllegalStateException("cannot set up TLS", e);
            }
        }

        Optional<String> presentedFingerprint() {
            return Optional.ofNullable(presented.get()).map(Tls::fingerprint);
        }

        boolean pinMismatch() { return pinMismatch; }

        static String fingerprint(X509Certificate cert) {
            try {
                byte[] d = MessageDigest.getInstance("SHA-256").digest(cert.getEncoded());
                return "sha256:" + HexFormat.ofDelimiter(":").withUpperCase().formatHex(d);
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }

        static String normalizeFingerprint(String text) {
            String t = text.trim().toLowerCase(Locale.ROOT);
            if (t.startsWith("sha256:")) t = t.substring(7);
            else if (t.startsWith("sha256=")) t = t.substring(7);
            return t.replace(":", "").replace(" ", "");
        }

        private interface CertCheck { void run() throws CertificateException; }

        /** Remembers the certificate shown, then applies the mode: accept, compare with the pin, or the system's check. */
        private void check(X509Certificate[] chain, CertCheck systemCheck) throws CertificateException {
            if (chain == null || chain.length == 0) throw new CertificateException("no certificate presented");
            presented.set(chain[0]);
            switch (mode) {
                case INSECURE -> { }
                case PIN -> {
                    if (!normalizeFingerprint(fingerprint(chain[0])).equals(pin)) {
                        pinMismatch = true;
                        throw new CertificateException("certificate does not match the pinned fingerprint");
                    }
                }
                case VERIFY -> systemCheck.run();
            }
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine) throws CertificateException {
            check(chain, () -> system.checkServerTrusted(chain, authType, engine));
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket) throws CertificateException {
            check(chain, () -> system.checkServerTrusted(chain, authType, socket));
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            check(chain, () -> system.checkServerTrusted(chain, authType));
        }

        @Override public void checkClientTrusted(X509Certificate[] c, String a, SSLEngine e) throws CertificateException { throw new CertificateException("not a server"); }
        @Override public void checkClientTrusted(X509Certificate[] c, String a, Socket s) throws CertificateException { throw new CertificateException("not a server"); }
        @Override public void checkClientTrusted(X509Certificate[] c, String a) throws CertificateException { throw new CertificateException("not a server"); }
        @Override public X509Certificate[] getAcceptedIssuers() { return new X509Certificate[0]; }
    }

    // =====================================================================================
    // The controller client: detection, login, CSRF, retries (Failsafe), single-flight re-login on 401
    // =====================================================================================

    enum Kind {
        UNIFI_OS("/proxy/network", "/api/auth/login", "/api/auth/logout", List.of("TOKEN", "UOS_TOKEN")),
        CLASSIC("", "/api/login", "/api/logout", List.of("unifises"));

        final String prefix, loginPath, logoutPath;
        final List<String> sessionCookies;

        Kind(String prefix, String loginPath, String logoutPath, List<String> sessionCookies) {
            this.prefix = prefix;
            this.loginPath = loginPath;
            this.logoutPath = logoutPath;
            this.sessionCookies = sessionCookies;
        }
    }

    record Site(String name, String desc) {
        String display() { return desc == null || desc.isBlank() || desc.equals(name) ? name : name + " (" + desc + ")"; }
    }

    record SysInfo(String version, String hostname, String model, String timezone) {}

    /** One HTTP answer, read whole (up to the size cap). */
    record Answer(String method, String path, int status, HttpHeaders headers, byte[] body) {
        String text() { return new String(body, StandardCharsets.UTF_8); }

        String header(String name) { return headers.firstValue(name).orElse(null); }

        /** The first 80 characters of the body, on one line, for error messages. */
        String snippet() {
            String t = text().replaceAll("\\s+", " ").trim();
            return t.isEmpty() ? "an empty body" : "'" + (t.length() > 80 ? t.substring(0, 80) + "…" : t) + "'";
        }

        JsonNode json() {
            try {
                JsonNode n = JSON.readTree(body);
                if (n != null && (n.isObject() || n.isArray())) return n;
            } catch (IOException ignored) { /* reported below */ }
            throw new ApiException(status, method + " " + path + " did not answer JSON (HTTP " + status + "): got " + snippet()
                    + " — a proxy, captive portal or a console still booting may be in the way");
        }

        /** The controller's own error word, if the body carries one ("api.err.Invalid", "MFA_AUTH_REQUIRED"). */
        String errorWord() {
            try {
                JsonNode n = JSON.readTree(body);
                if (n == null) return "";
                for (String f : List.of("code", "message")) if (n.path(f).isTextual()) return n.path(f).asText();
                return n.path("meta").path("msg").asText("");
            } catch (IOException e) {
                return "";
            }
        }
    }

    /**
     * The one retry policy (Failsafe), for the controller and for report delivery: transport failures and HTTP
     * 429/502/503/504 are retried up to UNIFI_MAX_RETRIES times with exponential backoff and jitter; Retry-After is
     * honoured (at most 5 minutes); a rate-limited login waits the max delay. Each retry is one WARN line.
     */
    static final class Retry {
        static final Set<Integer> RETRIED_STATUS = Set.of(429, 502, 503, 504);
        static final Duration MAX_RETRY_AFTER = Duration.ofMinutes(5);

        interface Attempt<T> { T run() throws Exception; }

        private final Config config;
        private final Log log;

        Retry(Config config, Log log) {
            this.config = config;
            this.log = log;
        }

        /** The attempt's result; when retries run out, the last result (the caller names it) or the last failure thrown. */
        <T> T run(String what, boolean isLogin, Attempt<T> attempt, java.util.function.Predicate<T> retryResult,
                  java.util.function.Predicate<Throwable> retryFailure) throws Exception {
            RetryPolicy<T> policy = RetryPolicy.<T>builder()
                    .handleIf((result, failure) -> failure != null ? retryFailure.test(failure) : retryResult.test(result))
                    .withMaxRetries(config.maxRetries())
                    .withDelayFn(ctx -> nextDelay(ctx.getLastResult(), ctx.getAttemptCount(), isLogin))
                    .onRetryScheduled(e -> log.warn(what + " failed: " + cause(e.getLastResult(), e.getLastException())
                            + "; retry " + e.getAttemptCount() + " of " + config.maxRetries() + " in " + Durations.format(e.getDelay())))
                    .build();
            try {
                return Failsafe.with(policy).get(attempt::run);
            } catch (FailsafeException e) {
                if (e.getCause() instanceof Exception cause) throw cause;
                throw e;
            }
        }

        String retriesText() { return config.maxRetries() + (config.maxRetries() == 1 ? " retry" : " retries"); }

        Duration nextDelay(Object lastResult, int attempts, boolean isLogin) {
            if (lastResult instanceof Answer a) {
                Optional<Duration> after = retryAfter(a.header("Retry-After"), Instant.now());
                if (after.isPresent()) return after.get();
                if (isLogin && a.status() == 429) return config.retryMaxDelay(); // never hammer the login
            }
            return backoff(config.retryInitialDelay(), config.retryMaxDelay(), attempts, ThreadLocalRandom.current().nextDouble());
        }

        /** initial × 2^(n-1), capped at max, then jittered by ±20% (never above max). */
        static Duration backoff(Duration initial, Duration max, int attempt, double random) {
            double base = initial.toMillis() * Math.pow(2, Math.max(0, attempt - 1));
            double capped = Math.min(base, max.toMillis());
            double jittered = capped * (0.8 + 0.4 * random);
            return Duration.ofMillis(Math.round(Math.min(jittered, max.toMillis())));
        }

        /** Retry-After as seconds or an HTTP date, clamped to 0..5 minutes. */
        static Optional<Duration> retryAfter(String header, Instant now) {
            if (header == null || header.isBlank()) return Optional.empty();
            Duration d;
            try {
                d = Duration.ofSeconds(Long.parseLong(header.trim()));
            } catch (NumberFormatException e) {
                try {
                    d = Duration.between(now, ZonedDateTime.parse(header.trim(), DateTimeFormatter.RFC_1123_DATE_TIME).toInstant());
                } catch (RuntimeException bad) {
                    return Optional.empty();
                }
            }
            if (d.isNegative()) d = Duration.ZERO;
            return Optional.of(d.compareTo(MAX_RETRY_AFTER) > 0 ? MAX_RETRY_AFTER : d);
        }

        private static String cause(Object result, Throwable failure) {
            if (result instanceof Answer a) return "HTTP " + a.status();
            if (result != null) return result.toString();
            return failure instanceof IOException io ? describeIo(io) : String.valueOf(failure);
        }
    }

    /**
     * The controller session this process holds: cookies and the CSRF token, updated from every answer (Set-Cookie,
     * X-Updated-Csrf-Token). Every value is registered as a secret the moment it arrives.
     */
    static final class Session {
        /** What the session cache keeps between runs. Never the password. */
        record Saved(Map<String, String> cookies, String csrf) {}

        private final Log log;
        private final Map<String, String> cookies = new LinkedHashMap<>();
        private String csrf;

        Session(Log log) { this.log = log; }

        synchronized void clear() {
            cookies.clear();
            csrf = null;
        }

        synchronized boolean hasAny(List<String> names) { return names.stream().anyMatch(cookies::containsKey); }

        synchronized String cookie(String name) { return cookies.get(name); }

        synchronized void csrf(String token) {
            csrf = token;
            log.secret(token);
        }

        /** Cookie and X-CSRF-Token headers for the next request. */
        synchronized void addTo(HttpRequest.Builder request) {
            if (!cookies.isEmpty())
                request.header("Cookie", String.join("; ", cookies.entrySet().stream().map(c -> c.getKey() + "=" + c.getValue()).toList()));
            if (csrf != null) request.header("X-CSRF-Token", csrf);
        }

        synchronized void remember(HttpHeaders headers) {
            headers.firstValue("X-Updated-Csrf-Token").ifPresent(this::csrf);
            for (String setCookie : headers.allValues("Set-Cookie")) {
                String[] parts = setCookie.split(";");
                int eq = parts[0].indexOf('=');
                if (eq <= 0) continue;
                String name = parts[0].substring(0, eq).trim(), value = parts[0].substring(eq + 1).trim();
                boolean expired = value.isEmpty() || setCookie.toLowerCase(Locale.ROOT).matches(".*;\\s*max-age=0\\b.*");
                if (expired) cookies.remove(name);
                else {
                    cookies.put(name, value);
                    log.secret(value);
                }
            }
        }

        synchronized Saved save() { return new Saved(new LinkedHashMap<>(cookies), csrf); }

        synchronized void restore(Saved saved) {
            cookies.clear();
            cookies.putAll(saved.cookies());
            saved.cookies().values().forEach(log::secret);
            csrf(saved.csrf());
        }
    }

    static final class UnifiClient {
        static final List<Integer> DEFAULT_PORTS = List.of(443, 8443, 11443);
        static final int DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

        private final Config config;
        private final Log log;
        private final Tls tls;
        private final HttpClient http;
        private final Retry retry;
        private final List<Integer> candidatePorts;
        private final Duration requestTimeout;
        int maxResponseBytes = DEFAULT_MAX_RESPONSE_BYTES;

        private final Session session;
        private final Object loginLock = new Object();
        private volatile long sessionGeneration; // bumped by every successful login
        private volatile boolean loggedIn;

        private String baseUrl;
        private Kind kind;
        private Site site;
        private SysInfo sysInfo;
        private int requests;
        private long bytesRead;

        UnifiClient(Config config, Log log) { this(config, log, null, DEFAULT_PORTS); }

        /** trustRoots replaces the system's CA certificates (tests); candidatePorts replaces 443/8443/11443. */
        UnifiClient(Config config, Log log, X509TrustManager trustRoots, List<Integer> candidatePorts) {
            this.config = config;
            this.log = log;
            this.tls = new Tls(config, trustRoots);
            this.candidatePorts = candidatePorts;
            this.requestTimeout = config.connectTimeout().multipliedBy(3);
            this.retry = new Retry(config, log);
            this.session = new Session(log);
            log.secret(config.password());
            log.secret(config.apiKey());
            this.http = HttpClient.newBuilder()
                    .sslContext(tls.context())
                    .connectTimeout(config.connectTimeout())
                    .followRedirects(HttpClient.Redirect.NEVER)
                    .version(HttpClient.Version.HTTP_1_1)
                    .build();
        }

        String baseUrl() { return baseUrl; }
        Kind kind() { return kind; }
        Site site() { return site; }
        SysInfo sysInfo() { return sysInfo; }
        boolean loggedIn() { return loggedIn; }
        synchronized int requestCount() { return requests; }
        synchronized long bytesRead() { return bytesRead; }
        Optional<String> certificateFingerprint() { return config.scheme().equals("https") ? tls.presentedFingerprint() : Optional.empty(); }

        // ---- connect: detect, authenticate, pick the site, fingerprint --------------------

        /** Everything --test checks: detection, login, site selection, sysinfo. */
        void connect() {
            detect();
            authenticate();
            useSite(selectSite(sites(), config.site()));
            readSysInfo();
        }

        /** Logs in unless an API key is used or a saved session was resumed (a 401 later still logs in). */
        void authenticate() {
            if (!config.usesApiKey() && !loggedIn) login();
        }

        void useSite(Site site) { this.site = site; }

        /** Cookies and CSRF token of the current session: what the session cache keeps. Never the password. */
        Session.Saved exportSession() { return session.save(); }

        /** Continues a saved session instead of logging in. If the controller no longer accepts it, the first 401 logs in. */
        void resume(Session.Saved saved) {
            session.restore(saved);
            loggedIn = true;
            log.debug("resuming the saved controller session");
        }

        /**
         * Finds the port and kind. GET / without redirects and without cookies: 200 is UniFi OS, 302 is classic.
         * A configured type or an API key skips the kind test; then the first port that answers HTTP at all wins.
         */
        void detect() {
            List<Integer> ports = config.port() != null ? List.of(config.port()) : candidatePorts;
            Kind forced = config.usesApiKey() || config.controllerType() == ControllerType.UNIFI_OS ? Kind.UNIFI_OS
                    : config.controllerType() == ControllerType.CLASSIC ? Kind.CLASSIC : null;
            if (forced != null && config.port() != null) { // nothing to find out: no probe at all
                baseUrl = urlFor(config.port());
                kind = forced;
                log.debug("using the configured " + (kind == Kind.UNIFI_OS ? "UniFi OS" : "classic") + " controller at " + baseUrl);
                return;
            }
            Probe found = withRetry("detecting the controller at " + config.host(), false, () -> probeRound(ports, forced), this::probeRetryable);
            if (found.kind == null && Retry.RETRIED_STATUS.contains(found.status))
                throw new ConnectionException(found.url + " answered " + found.status + " to GET / after " + retriesText()
                        + ": the controller is restarting or overloaded; try again later");
            if (found.kind == null) {
                throw new ConnectionException(found.url + " does not look like a UniFi controller (GET / answered " + found.status
                        + "): check UNIFI_HOST and UNIFI_PORT, or set UNIFI_CONTROLLER_TYPE if it is one");
            }
            baseUrl = found.url;
            kind = found.kind;
            log.debug("found a " + (kind == Kind.UNIFI_OS ? "UniFi OS" : "classic") + " controller at " + baseUrl
                    + (forced != null ? " (type configured, not probed)" : ""));
        }

        private record Probe(String url, int status, Kind kind, IOException failure) {
            @Override public String toString() { return "GET / answered " + status; }
        }

        private Probe probeRound(List<Integer> ports, Kind forced) throws IOException {
            Probe firstAnswer = null;
            IOException firstFailure = null;
            for (int port : ports) {
                String url = urlFor(port);
                try {
                    Answer a = exchange("GET", url, "/", null, false);
                    Kind k = forced != null ? forced : a.status() == 200 ? Kind.UNIFI_OS : a.status() == 302 ? Kind.CLASSIC : null;
                    Probe p = new Probe(url, a.status(), k, null);
                    if (k != null && !Retry.RETRIED_STATUS.contains(a.status())) return p;
                    if (firstAnswer == null) firstAnswer = p;
                } catch (IOException e) {
                    if (!retryable(e)) throw e;
                    log.debug("GET " + url + "/ failed: " + describeIo(e));
                    if (firstFailure == null) firstFailure = e;
                }
            }
            if (firstAnswer != null) return firstAnswer;
            throw firstFailure;
        }

        private boolean probeRetryable(Probe p) { return Retry.RETRIED_STATUS.contains(p.status()); }

        private String urlFor(int port) {
            boolean standard = (config.scheme().equals("https") && port == 443) || (config.scheme().equals("http") && port == 80);
            return config.scheme() + "://" + hostForUrl() + (standard ? "" : ":" + port);
        }

        private String hostForUrl() { return config.host().contains(":") ? "[" + config.host() + "]" : config.host(); }

        /** Logs in with username and password (UniFi OS or classic flow). Counts as a new session. */
        void login() {
            ObjectNode body = JSON.createObjectNode().put("username", config.username()).put("password", config.password());
            if (kind == Kind.UNIFI_OS) body.put("rememberMe", false).put("token", "");
            session.clear();
            loggedIn = false;
            Answer a = withRetry("logging in", true, () -> exchange("POST", baseUrl, kind.loginPath, body.toString(), true), this::retryableStatus);
            String word = a.errorWord();
            if (a.status() == 429)
                throw new AuthException("the controller is rate-limiting logins (429 after " + retriesText() + "); wait a minute, then try again");
            if (a.status() == 499 || word.contains("MFA") || word.contains("2fa"))
                throw new AuthException("the account '" + config.username() + "' needs multi-factor authentication: create a local account without MFA for the scanner, or use UNIFI_API_KEY");
            boolean rejected = a.status() == 401 || a.status() == 403
                    || (kind == Kind.CLASSIC && (a.status() == 400 || word.equals("api.err.Invalid")));
            if (rejected)
                throw new AuthException("the controller rejected username '" + config.username() + "' (" + a.status()
                        + (word.isEmpty() ? "" : " " + word) + "): check UNIFI_USERNAME and UNIFI_PASSWORD");
            if (a.status() == 404)
                throw new ConnectionException("the login endpoint " + kind.loginPath + " is missing (404) at " + baseUrl
                        + ": set UNIFI_CONTROLLER_TYPE=" + (kind == Kind.UNIFI_OS ? "classic" : "unifi-os") + " if detection guessed wrong");
            if (a.status() != 200) throw new ConnectionException("login at " + baseUrl + " failed: HTTP " + a.status() + " " + a.snippet());
            JsonNode answer = a.json();
            if ("error".equals(answer.path("meta").path("rc").asText()))
                throw new AuthException("the controller refused the login: " + answer.path("meta").path("msg").asText());
            if (!session.hasAny(kind.sessionCookies))
                throw new ConnectionException("login at " + baseUrl + " answered 200 but set no session cookie (" + String.join("/", kind.sessionCookies) + ")");
            String token = a.header("X-CSRF-Token");
            if (token == null) token = session.cookie("csrf_token");
            if (token != null) session.csrf(token);
            loggedIn = true;
            sessionGeneration++;
            log.debug("logged in as '" + config.username() + "'");
        }

        /** Ends the session if this run opened one. Never throws: a failed logout must not mask the run's outcome. */
        void logout() {
            if (!loggedIn) return;
            loggedIn = false;
            try {
                Answer a = exchange("POST", baseUrl, kind.logoutPath, kind == Kind.UNIFI_OS ? null : "{}", true);
                log.debug("logged out (" + a.status() + ")");
            } catch (IOException | RuntimeException e) {
                log.warn("logout failed: " + describeIo(e));
            }
            session.clear();
        }

        List<Site> sites() {
            List<Site> out = new ArrayList<>();
            for (JsonNode s : data(get("/api/self/sites")))
                out.add(new Site(s.path("name").asText(), s.path("desc").asText(null)));
            return out;
        }

        static Site selectSite(List<Site> sites, String wanted) {
            String available = String.join(", ", sites.stream().map(Site::display).toList());
            if (wanted == null || wanted.isBlank()) {
                if (sites.size() == 1) return sites.get(0);
                if (sites.isEmpty()) throw new ConfigException("this account sees no sites on the controller: give it access to one");
                throw new ConfigException("the controller has " + sites.size() + " sites; set UNIFI_SITE to one of: " + available);
            }
            return sites.stream()
                    .filter(s -> s.name().equalsIgnoreCase(wanted.trim()) || (s.desc() != null && s.desc().equalsIgnoreCase(wanted.trim())))
                    .findFirst()
                    .orElseThrow(() -> new ConfigException("no site '" + wanted + "' on the controller; set UNIFI_SITE to one of: " + available));
        }

        SysInfo readSysInfo() {
            JsonNode d = data(get("/api/s/" + site.name() + "/stat/sysinfo")).path(0);
            String model = d.path("ubnt_device_type").asText(null);
            sysInfo = new SysInfo(d.path("version").asText(null), d.path("hostname").asText(null), model, d.path("timezone").asText(null));
            return sysInfo;
        }

        /** "UniFi OS console (UDMPRO)", "UniFi OS Server" or "classic Network application". */
        String describeKind() {
            if (kind == Kind.CLASSIC) return "classic Network application";
            String model = sysInfo == null ? null : sysInfo.model();
            return model == null || model.isBlank() ? "UniFi OS Server" : "UniFi OS console (" + model + ")";
        }

        // ---- authenticated requests -------------------------------------------------------

        /** GET {prefix}{path}, parsed as JSON. */
        JsonNode get(String path) { return call("GET", path, null); }

        /** POST {prefix}{path} with a JSON body, parsed as JSON. */
        JsonNode post(String path, JsonNode body) { return call("POST", path, body.toString()); }

        /**
         * One authenticated request: retried on transient failures; a 401 (expired session) triggers one shared
         * re-login and one replay; a second 401 is an authentication failure.
         */
        JsonNode call(String method, String path, String body) {
            String full = kind.prefix + path;
            long generation = sessionGeneration;
            Answer a = send(method, full, body);
            if (a.status() == 401 && !a.text().contains("api.err.NoSiteContext")) {
                if (config.usesApiKey())
                    throw new AuthException("the controller rejected the API key (401): create a new one under Network → Settings → Control Plane → Integrations");
                log.debug(method + " " + full + " answered 401: the session expired, logging in again");
                relogin(generation);
                a = send(method, full, body);
                if (a.status() == 401)
                    throw new AuthException(method + " " + full + " answered 401 right after a fresh login: the account '"
                            + config.username() + "' may lack access to this site or API");
            }
            return check(a);
        }

        private Answer send(String method, String fullPath, String body) {
            return withRetry(method + " " + fullPath, false, () -> exchange(method, baseUrl, fullPath, body, true), this::retryableStatus);
        }

        /** Single-flight: of the requests that saw the same session expire, only the first logs in again. */
        private void relogin(long seenGeneration) {
            synchronized (loginLock) {
                if (sessionGeneration == seenGeneration) login();
                else log.debug("another request already logged in again");
            }
        }

        private JsonNode check(Answer a) {
            String where = a.method() + " " + a.path();
            if (a.status() == 401)
                throw new ConfigException(where + " answered 401 " + a.errorWord() + ": the account cannot see site '" + site.name() + "'; check UNIFI_SITE");
            if (a.status() == 403) {
                String word = a.errorWord();
                throw new AuthException(where + " was refused (403" + (word.isEmpty() ? "" : " " + word) + "): "
                        + (word.toLowerCase(Locale.ROOT).contains("csrf") ? "the controller did not accept the CSRF token" : "the account lacks permission for it"));
            }
            if (a.status() == 404 || a.status() == 400)
                throw new ApiException(a.status(), where + " is not available on this controller (" + a.status()
                        + (a.errorWord().isEmpty() ? "" : " " + a.errorWord()) + ")");
            if (Retry.RETRIED_STATUS.contains(a.status()))
                throw new ConnectionException(where + " answered " + a.status() + " after " + retriesText() + ": the controller is overloaded or restarting; try again later");
            if (a.status() / 100 != 2)
                throw new ApiException(a.status(), where + " answered HTTP " + a.status() + ": " + a.snippet());
            JsonNode n = a.json();
            if ("error".equals(n.path("meta").path("rc").asText()))
                throw new ApiException(a.status(), where + " answered an error: " + n.path("meta").path("msg").asText(a.snippet()));
            if (n.has("errorCode") && n.path("errorCode").asInt() >= 400)
                throw new ApiException(n.path("errorCode").asInt(), where + " answered an error: " + n.path("errorCode").asInt() + " " + n.path("message").asText());
            return n;
        }

        /** The data array of a v1 envelope; a missing one is a protocol error, never a silent empty list. */
        static JsonNode data(JsonNode envelope) {
            JsonNode d = envelope.path("data");
            if (!d.isArray()) throw new ConnectionException("the controller's answer has no data list: " + abbreviate(envelope.toString()));
            return d;
        }

        // ---- retries ----------------------------------------------------------------------

        /** Runs an attempt under the retry policy; a transport failure that outlasts it becomes a one-line error. */
        private <T> T withRetry(String what, boolean isLogin, Retry.Attempt<T> attempt, java.util.function.Predicate<T> retryResult) {
            try {
                return retry.run(what, isLogin, attempt, retryResult, f -> f instanceof IOException io && retryable(io));
            } catch (IOException e) {
                throw transportError(e, what);
            } catch (ScannerException e) {
                throw e;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new ConnectionException(what + " was interrupted");
            } catch (Exception e) {
                throw new ConnectionException(what + " failed: " + e);
            }
        }

        private String retriesText() { return retry.retriesText(); }

        private boolean retryableStatus(Answer a) { return Retry.RETRIED_STATUS.contains(a.status()); }

        static boolean retryable(IOException e) {
            return !(e instanceof SSLException) && !(e instanceof UnknownHostException) && !(e.getCause() instanceof UnresolvedAddressException)
                    && !(e instanceof ResponseTooLarge) && e.getClass() != java.io.InterruptedIOException.class;
        }

        private ScannerException transportError(IOException e, String what) {
            String target = baseUrl != null ? baseUrl : config.scheme() + "://" + hostForUrl() + (config.port() == null ? "" : ":" + config.port());
            if (e instanceof SSLHandshakeException || e instanceof SSLException) {
                Optional<String> seen = tls.presentedFingerprint();
                if (tls.pinMismatch())
                    return new ConnectionException("the controller's certificate " + seen.orElse("?") + " does not match UNIFI_CERT_FINGERPRINT sha256:"
                            + HexFormat.ofDelimiter(":").withUpperCase().formatHex(HexFormat.of().parseHex(config.certFingerprint()))
                            + ": refusing to connect (if the controller's certificate was replaced on purpose, pin the new one)");
                if (seen.isPresent())
                    return new ConnectionException("the TLS certificate of " + config.host() + " could not be verified (self-signed, or not issued for this name); it presented "
                            + seen.get() + " — to trust exactly this certificate set UNIFI_CERT_FINGERPRINT=" + seen.get()
                            + " (secure), or set UNIFI_VERIFY_SSL=false (insecure)");
                return new ConnectionException("TLS handshake with " + config.host() + " failed: " + describeIo(e)
                        + (config.scheme().equals("https") ? " — is this port serving HTTPS?" : ""));
            }
            if (e instanceof UnknownHostException || e.getCause() instanceof UnresolvedAddressException)
                return new ConnectionException("cannot resolve host '" + config.host() + "': check UNIFI_HOST");
            String retries = config.maxRetries() > 0 ? " after " + retriesText() : "";
            String ports = config.port() == null && baseUrl == null ? " (tried ports " + candidatePorts.toString().replaceAll("[\\[\\]]", "") + ")" : "";
            return new ConnectionException(what + " failed" + retries + ": " + describeIo(e) + " at " + target + ports
                    + " — check UNIFI_HOST/UNIFI_PORT and that the controller is up");
        }

        // ---- one HTTP exchange ------------------------------------------------------------

        /**
         * Sends one request and reads the whole answer (up to maxResponseBytes). With {@code withSession}, cookies and
         * the CSRF token are sent and updated from the answer; without, nothing is sent or kept (a throwaway jar).
         */
        Answer exchange(String method, String base, String path, String body, boolean withSession) throws IOException {
            HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path))
                    .timeout(requestTimeout)
                    .header("Accept", "application/json")
                    .header("User-Agent", "unifi-scanner/" + VERSION);
            if (body != null) b.header("Content-Type", "application/json");
            b.method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8));
            if (withSession) {
                if (config.usesApiKey()) b.header("X-API-KEY", config.apiKey());
                session.addTo(b);
            }
            long started = System.nanoTime();
            synchronized (this) { requests++; }
            HttpResponse<byte[]> r;
            CompletableFuture<HttpResponse<byte[]>> f = http.sendAsync(b.build(), info -> new CappedBody(maxResponseBytes));
            try {
                r = f.get(requestTimeout.toMillis() + 1_000, TimeUnit.MILLISECONDS);
            } catch (TimeoutException e) {
                f.cancel(true);
                throw new HttpTimeoutException("no complete answer within " + Durations.format(requestTimeout));
            } catch (InterruptedException e) {
                f.cancel(true);
                Thread.currentThread().interrupt();
                throw new java.io.InterruptedIOException("interrupted");
            } catch (ExecutionException e) {
                if (e.getCause() instanceof IOException io) throw io;
                if (e.getCause() instanceof Error error) throw error; // out of memory and the like: never retried
                throw new IOException(String.valueOf(e.getCause()), e.getCause());
            }
            synchronized (this) { bytesRead += r.body().length; }
            if (withSession) session.remember(r.headers());
            log.debug(method + " " + path + " -> " + r.statusCode() + " (" + (System.nanoTime() - started) / 1_000_000 + " ms, " + r.body().length + " bytes)");
            return new Answer(method, path, r.statusCode(), r.headers(), r.body());
        }
    }

    /** Collects a response body, failing as soon as it passes the cap instead of filling memory. */
    static final class CappedBody implements HttpResponse.BodySubscriber<byte[]> {
        private final int cap;
        private final CompletableFuture<byte[]> result = new CompletableFuture<>();
        private final java.io.ByteArrayOutputStream buffer = new java.io.ByteArrayOutputStream();
        private Flow.Subscription subscription;

        CappedBody(int cap) { this.cap = cap; }

        @Override public CompletableFuture<byte[]> getBody() { return result; }

        @Override
        public void onSubscribe(Flow.Subscription s) {
            subscription = s;
            s.request(Long.MAX_VALUE);
        }

        @Override
        public void onNext(List<ByteBuffer> items) {
            for (ByteBuffer item : items) {
                if (buffer.size() + item.remaining() > cap) {
                    subscription.cancel();
                    result.completeExceptionally(new ResponseTooLarge(cap));
                    return;
                }
                byte[] chunk = new byte[item.remaining()];
                item.get(chunk);
                buffer.write(chunk, 0, chunk.length);
            }
        }

        @Override public void onError(Throwable t) { result.completeExceptionally(t); }

        @Override public void onComplete() { result.complete(buffer.toByteArray()); }
    }

    static final class ResponseTooLarge extends IOException {
        ResponseTooLarge(int cap) {
            super("the answer was larger than " + (cap >= 1 << 20 ? cap / (1 << 20) + " MiB" : cap + " bytes") + ", the most this tool reads");
        }
    }

    static String describeIo(Throwable e) {
        if (e instanceof ConnectException) return "connection refused";
        if (e instanceof HttpConnectTimeoutException) return "connect timed out";
        if (e instanceof HttpTimeoutException) return "timed out waiting for an answer";
        if (e instanceof NoSuchFileException) return "no such file";
        if (e instanceof java.nio.file.AccessDeniedException) return "permission denied";
        String m = e.getMessage();
        if (m == null || m.isBlank()) return e.getClass().getSimpleName();
        if (m.toLowerCase(Locale.ROOT).contains("reset")) return "connection reset";
        if (m.contains("header parser received no bytes") || m.contains("closed")) return "connection closed by the controller";
        return m;
    }

    static String abbreviate(String s) { return s.length() > 80 ? s.substring(0, 80) + "…" : s; }

    // =====================================================================================
    // Collect: everything new since the cursor, from every source the controller has, in one event type
    // =====================================================================================

    static final Pattern PLACEHOLDER = Pattern.compile("\\{(\\w+)}");

    /** Replaces each {NAME} with {@code valueOf(NAME)}; a placeholder with no value (null) stays as written. */
    static String fillPlaceholders(String template, java.util.function.Function<String, String> valueOf) {
        Matcher m = PLACEHOLDER.matcher(template);
        StringBuilder out = new StringBuilder();
        while (m.find()) {
            String v = valueOf.apply(m.group(1));
            m.appendReplacement(out, Matcher.quoteReplacement(v == null ? m.group() : v));
        }
        return m.appendTail(out).toString();
    }

    /** A v2 parameter as text: {"name":"Garage AP","id":...} → its name (else hostname, else id), or a scalar as is. */
    static String parameterText(JsonNode p) {
        if (p.isObject()) return Collector.firstText(p, "name", "hostname", "id");
        return p.isValueNode() && !p.isNull() ? p.asText() : null;
    }

    /**
     * One thing that happened, whichever API it came from, with the controller's record as {@code raw}. Events stream
     * through the explainer, which keeps only a few per finding, so holding the record costs no memory at scale.
     */
    record Event(String site, Instant time, String key, String origin, String severityHint, String subsystem,
                 String deviceMac, String deviceName, String client, String message, String id, JsonNode raw) {
        /** A scalar field of the record, or a v2 parameter's name ({"IP":{"name":"x"}} for "ip"); "" when absent. */
        String field(String name) {
            JsonNode v = raw.path(name);
            if (v.isValueNode() && !v.isNull()) return v.asText();
            String text = parameterText(raw.path("parameters").path(name.toUpperCase(Locale.ROOT)));
            return text == null ? "" : text;
        }
    }

    /** One IPS/IDS alert (flat inner_alert_* fields). */
    record IpsAlert(String site, Instant time, String id, long sid, String signature, String category, String action,
                    String srcIp, String srcCountry, String dstIp, int dstPort, String proto, int severity) {
        boolean blocked() { return action.equalsIgnoreCase("blocked") || action.equalsIgnoreCase("drop") || action.equalsIgnoreCase("reject"); }

        boolean cybersecure() { return sid >= 2_800_000 && sid <= 2_899_999; }
    }

    /** A stat/device snapshot, reduced to what health checks read. Missing figures are null. */
    record Device(String site, String mac, String name, String model, String type, int state, boolean adopted, Long uptime,
                  boolean upgradable, String version, String upgradeTo, Double cpu, Double mem, Double temperature,
                  boolean overheating, Double poeBudget, Double poeUsed) {
        String label() { return name == null || name.isBlank() ? (model == null ? "device" : model) + " " + mac : name; }
    }

    record Subsystem(String site, String name, String status) {}

    /** What one site gave besides its events (which streamed into the sink): snapshots, and how each source fared. */
    record SiteSnapshot(List<Device> devices, List<Subsystem> health, Map<String, String> sources, Map<String, String> notes,
                        int malformed, int recordsRead) {}

    static final class Collector {
        static final int V1_PAGE = 3000, V2_PAGE = 1000, IPS_LIMIT = 10_000;
        /** The v2 categories controllers accept; any other value answers 400. */
        static final List<String> V2_CATEGORIES = List.of("SECURITY", "UNIFI_DEVICES", "SOFTWARE_UPDATES", "VPN", "POWER",
                "UNIFI_ETHERNET_PORTS", "CLIENT_DEVICES", "UNKNOWN", "AUDIT", "INTERNET_AND_WAN");
        static final List<String> DEVICE_PREFIXES = List.of("ap", "sw", "gw", "xg", "dm", "bb", "usp", "dev");

        private final UnifiClient client;
        private final Log log;
        private Boolean systemLog; // null until the first site tells which event API this controller has
        private int malformed;

        Collector(UnifiClient client, Log log) {
            this.client = client;
            this.log = log;
        }

        /** Where collected events go, one at a time: a scan never holds all of them. */
        interface Sink {
            void event(Event e);

            void ips(IpsAlert a);
        }

        /**
         * Reads one site: alarms, IPS alerts and events since {@code from} (inclusive) stream into the sink; devices
         * and subsystem health (snapshots) come back with the per-source outcome.
         */
        SiteSnapshot collect(String site, Instant from, Instant to, Sink sink) {
            malformed = 0;
            read = 0;
            Map<String, String> sources = new LinkedHashMap<>(), notes = new LinkedHashMap<>();
            List<Device> devices = new ArrayList<>();
            List<Subsystem> health = new ArrayList<>();
            List<Event> alarms = new ArrayList<>();
            Set<String> ipsIds = new java.util.HashSet<>();
            source("alarms", "Alarms", sources, notes, () -> alarms.addAll(alarms(site, from)));
            source("ips", "IPS events", sources, notes, () -> ips(site, from, to, a -> {
                ipsIds.add(a.id());
                sink.ips(a);
            }));
            // Alarms repeat events the event log has (same key, time, device): an alarm is kept only if no event matched it.
            Map<String, Event> pendingAlarms = new LinkedHashMap<>();
            alarms.forEach(a -> pendingAlarms.put(alarmKey(a), a));
            events(site, from, to, new Sink() { // the core source: its failure fails the run
                @Override public void event(Event e) {
                    if (!pendingAlarms.isEmpty()) pendingAlarms.remove(alarmKey(e));
                    sink.event(e);
                }

                @Override public void ips(IpsAlert a) { // IPS alerts also arrive as EVT_IPS_IpsAlert events: keep one of each
                    if (ipsIds.add(a.id())) sink.ips(a);
                }
            });
            sources.put("events", "ok");
            pendingAlarms.values().forEach(sink::event);
            source("devices", "Devices", sources, notes, () -> devices.addAll(devices(site)));
            source("health", "Subsystem health", sources, notes, () -> health.addAll(health(site)));
            return new SiteSnapshot(devices, health, sources, notes, malformed, read);
        }

        private int read;

        private static String alarmKey(Event e) { return e.key() + "|" + e.time().toEpochMilli() + "|" + e.deviceMac(); }

        private void source(String key, String label, Map<String, String> sources, Map<String, String> notes, Runnable read) {
            try {
                read.run();
                sources.put(key, "ok");
            } catch (ApiException e) {
                if (!e.endpointMissing()) throw e;
                sources.put(key, "unavailable");
                notes.put(key, label + ": not available on this controller version");
                log.debug(label + " are not available on this controller (" + e.status + "); skipped");
            } catch (AuthException e) {
                throw e;
            } catch (ScannerException e) {
                sources.put(key, "error");
                notes.put(key, label + ": could not be read (" + e.getMessage() + ")");
                log.warn(label + " could not be read: " + e.getMessage());
            }
        }

        // ---- events: v1 stat/event (≤ 9.x), else the v2 system log (10.x) -------------------

        void events(String site, Instant from, Instant to, Sink sink) {
            if (!Boolean.TRUE.equals(systemLog)) {
                try {
                    v1Events(site, from, to, sink);
                    systemLog = false;
                    return;
                } catch (ApiException e) {
                    if (!e.endpointMissing() || Boolean.FALSE.equals(systemLog)) throw e;
                    log.debug("stat/event is not available (" + e.status + "): reading the v2 system log instead");
                    systemLog = true;
                }
            }
            systemLogEvents(site, from, to, sink);
        }

        /** Newest first, page by page, until the page reaches back past the cursor or the controller's total. */
        void v1Events(String site, Instant from, Instant to, Sink sink) {
            long hours = Math.max(1, (long) Math.ceil(Duration.between(from, to).toMinutes() / 60.0) + 1);
            for (int start = 0; ; start += V1_PAGE) {
                ObjectNode body = JSON.createObjectNode().put("_sort", "-time").put("within", hours).put("_start", start).put("_limit", V1_PAGE);
                JsonNode answer = client.post("/api/s/" + site + "/stat/event", body);
                JsonNode data = UnifiClient.data(answer);
                boolean reachedCursor = false;
                for (JsonNode r : data) {
                    if (r.has("inner_alert_signature")) {
                        IpsAlert a = normalize(() -> ipsAlert(site, r));
                        if (a != null && a.time().isBefore(from)) reachedCursor = true;
                        else if (a != null) sink.ips(a);
                        continue;
                    }
                    Event e = normalize(() -> v1Event(site, r, "event"));
                    if (e == null) continue;
                    if (e.time().isBefore(from)) reachedCursor = true;
                    else sink.event(e);
                }
                long total = answer.path("meta").path("count").asLong(-1);
                if (data.size() < V1_PAGE || reachedCursor || (total >= 0 && start + data.size() >= total)) return;
            }
        }

        void systemLogEvents(String site, Instant from, Instant to, Sink sink) {
            for (int page = 0; ; page++) {
                ObjectNode body = JSON.createObjectNode().put("timestampFrom", from.toEpochMilli()).put("timestampTo", to.toEpochMilli())
                        .put("pageNumber", page).put("pageSize", V2_PAGE);
                V2_CATEGORIES.forEach(body.putArray("categories")::add);
                List.of("LOW", "MEDIUM", "HIGH", "VERY_HIGH").forEach(body.putArray("severities")::add);
                JsonNode answer = client.post("/v2/api/site/" + site + "/system-log/all", body);
                JsonNode data = answer.path("data");
                if (!data.isArray()) throw new ConnectionException("the system log answer has no data list: " + abbreviate(answer.toString()));
                for (JsonNode r : data) {
                    Event e = normalize(() -> v2Event(site, r));
                    if (e != null && !e.time().isBefore(from)) sink.event(e);
                }
                int pages = answer.path("total_page_count").asInt(0);
                if (page + 1 >= pages || data.isEmpty()) return;
            }
        }

        List<Event> alarms(String site, Instant from) {
            List<Event> out = new ArrayList<>();
            for (JsonNode r : UnifiClient.data(client.get("/api/s/" + site + "/list/alarm?archived=false"))) {
                Event e = normalize(() -> v1Event(site, r, "alarm"));
                if (e != null && !e.time().isBefore(from)) out.add(e);
            }
            return out;
        }

        void ips(String site, Instant from, Instant to, Consumer<IpsAlert> sink) {
            ObjectNode body = JSON.createObjectNode().put("start", from.toEpochMilli()).put("end", to.toEpochMilli()).put("_limit", IPS_LIMIT);
            for (JsonNode r : UnifiClient.data(client.post("/api/s/" + site + "/stat/ips/event", body))) {
                IpsAlert a = normalize(() -> ipsAlert(site, r));
                if (a != null && !a.time().isBefore(from)) sink.accept(a);
            }
        }

        List<Device> devices(String site) {
            List<Device> out = new ArrayList<>();
            for (JsonNode r : UnifiClient.data(client.get("/api/s/" + site + "/stat/device"))) {
                try {
                    out.add(device(site, r));
                } catch (RuntimeException e) {
                    malformed++;
                }
            }
            return out;
        }

        List<Subsystem> health(String site) {
            List<Subsystem> out = new ArrayList<>();
            for (JsonNode r : UnifiClient.data(client.get("/api/s/" + site + "/stat/health")))
                out.add(new Subsystem(site, r.path("subsystem").asText("?"), r.path("status").asText("unknown")));
            return out;
        }

        /** Parses one record; a record that cannot be read is counted and skipped, never fatal. */
        private <T> T normalize(java.util.function.Supplier<T> parse) {
            read++;
            try {
                return parse.get();
            } catch (RuntimeException e) {
                malformed++;
                return null;
            }
        }

        // ---- normalization: one place per record shape ---------------------------------

        static Event v1Event(String site, JsonNode r, String origin) {
            String key = r.path("key").asText("");
            if (key.isBlank()) throw new IllegalArgumentException("no key");
            String mac = null, name = null;
            for (String p : DEVICE_PREFIXES) {
                if (r.path(p).isTextual() && !r.path(p).asText().isBlank()) {
                    mac = r.path(p).asText();
                    name = r.path(p + "_name").asText(null);
                    break;
                }
            }
            String client = firstText(r, "hostname", "user", "guest");
            return new Event(site, time(r), key, origin, null, r.path("subsystem").asText(null), mac, name, client,
                    r.path("msg").asText(""), r.path("_id").asText(""), r);
        }

        static Event v2Event(String site, JsonNode r) {
            String key = firstText(r, "key", "event");
            if (key == null) throw new IllegalArgumentException("no key");
            JsonNode params = r.path("parameters");
            JsonNode dev = params.path("DEVICE");
            String client = params.path("CLIENT").isObject() ? parameterText(params.path("CLIENT")) : null;
            String message = fill(r.path("message_raw").asText(r.path("message").asText("")), params);
            return new Event(site, time(r), key, "system-log", r.path("severity").asText(null), r.path("category").asText(null),
                    dev.isObject() ? firstText(dev, "mac", "id") : null, dev.isObject() ? dev.path("name").asText(null) : null,
                    client, message, r.path("id").asText(r.path("_id").asText("")), r);
        }

        /** "{DEVICE} lost contact" with parameters {"DEVICE":{"name":"Garage AP"}} → "Garage AP lost contact". */
        static String fill(String template, JsonNode params) {
            return fillPlaceholders(template, name -> parameterText(params.path(name)));
        }

        static IpsAlert ipsAlert(String site, JsonNode r) {
            String signature = r.path("inner_alert_signature").asText("");
            if (signature.isBlank()) throw new IllegalArgumentException("no signature");
            String country = r.path("srcipCountry").isTextual() ? r.path("srcipCountry").asText() : r.path("srcipGeo").path("country_code").asText("");
            return new IpsAlert(site, time(r), firstText(r, "_id", "unique_alertid") == null ? "" : firstText(r, "_id", "unique_alertid"),
                    r.path("inner_alert_signature_id").asLong(0), signature, r.path("inner_alert_category").asText(""),
                    r.path("inner_alert_action").asText(""), r.path("src_ip").asText(""), country, r.path("dest_ip").asText(""),
                    r.path("dest_port").asInt(0), r.path("proto").asText(""), r.path("inner_alert_severity").asInt(3));
        }

        static Device device(String site, JsonNode r) {
            String mac = r.path("mac").asText("");
            if (mac.isBlank()) throw new IllegalArgumentException("no mac");
            Double temperature = number(r.path("general_temperature"));
            for (JsonNode t : r.path("temperatures")) {
                Double v = number(t.path("value"));
                if (v != null && (temperature == null || v > temperature)) temperature = v;
            }
            Double poeUsed = null;
            for (JsonNode p : r.path("port_table")) {
                Double w = number(p.path("poe_power"));
                if (w != null && p.path("poe_enable").asBoolean(true)) poeUsed = (poeUsed == null ? 0 : poeUsed) + w;
            }
            Double budget = number(r.path("total_max_power"));
            return new Device(site, mac, r.path("name").asText(null), r.path("model").asText(null), r.path("type").asText(""),
                    r.path("state").asInt(0), r.path("adopted").asBoolean(true), r.has("uptime") ? r.path("uptime").asLong() : null,
                    r.path("upgradable").asBoolean(false), r.path("version").asText(null), r.path("upgrade_to_firmware").asText(null),
                    number(r.path("system-stats").path("cpu")), number(r.path("system-stats").path("mem")), temperature,
                    r.path("overheating").asBoolean(false), budget, budget == null ? null : poeUsed);
        }

        /** ms "time"; else "timestamp" (seconds, or ms when it is that large); else ISO "datetime". */
        static Instant time(JsonNode r) {
            if (r.path("time").isNumber()) return Instant.ofEpochMilli(r.path("time").asLong());
            if (r.path("timestamp").isNumber()) {
                long t = r.path("timestamp").asLong();
                return t > 100_000_000_000L ? Instant.ofEpochMilli(t) : Instant.ofEpochSecond(t);
            }
            if (r.path("datetime").isTextual()) return Instant.parse(r.path("datetime").asText());
            throw new IllegalArgumentException("no time");
        }

        static Double number(JsonNode n) {
            if (n.isNumber()) return n.asDouble();
            if (n.isTextual()) {
                try {
                    return Double.parseDouble(n.asText().trim());
                } catch (NumberFormatException e) {
                    return null;
                }
            }
            return null;
        }

        static String firstText(JsonNode r, String... fields) {
            for (String f : fields) if (r.path(f).isValueNode() && !r.path(f).asText().isBlank()) return r.path(f).asText();
            return null;
        }
    }

    // =====================================================================================
    // Explain: rules and thresholds are tables; events become findings a non-expert understands
    // =====================================================================================

    enum Severity {
        SEVERE, MEDIUM, LOW;

        String word() { return name().toLowerCase(Locale.ROOT); }
    }

    enum Category {
        SECURITY, CONNECTIVITY, INTERNET, POWER, WIRELESS, FIRMWARE, SYSTEM;

        String word() { return name().toLowerCase(Locale.ROOT); }
    }

    /**
     * One rule: the event keys it explains (a regex over real controller keys), how its events are grouped into one
     * finding (by "device", "client", "key" or a record field such as "ip"), and the words. {placeholders} in titles
     * are filled from the event ({device}, {client}, or a record field). At {@code escalateAt} events in one group the
     * finding becomes severe with the escalated words (an AP that keeps dropping off is flapping).
     */
    record Rule(Pattern keys, Category category, Severity severity, String groupBy, String title, String explanation,
                List<String> steps, int escalateAt, String escalatedTitle, String escalatedExplanation) {
        static Rule of(String keys, Category c, Severity s, String groupBy, String title, String explanation, String... steps) {
            return new Rule(Pattern.compile(keys), c, s, groupBy, title, explanation, List.of(steps), 0, null, null);
        }

        Rule escalate(int at, String title, String explanation) {
            return new Rule(keys, category, severity, groupBy, this.title, this.explanation, steps, at, title, explanation);
        }
    }

    static final String CHECK_POWER = "Check that the device has power: its LED, the PoE port or injector feeding it, and any UPS.";
    static final String CHECK_CABLE = "Check its network cable and the switch port it plugs into (reseat it; try another cable or port).";

    static final List<Rule> RULES = List.of(
            Rule.of("EVT_(AP|SW|GW|XG|DM|BB)_Lost_Contact", Category.CONNECTIVITY, Severity.MEDIUM, "device",
                    "{device} dropped off the network",
                    "The controller lost contact with this device. While it was gone, anything connected through it (Wi-Fi clients, wired devices behind a switch) may have lost its connection.",
                    CHECK_POWER, CHECK_CABLE, "If it keeps happening, look at the device's uptime: a short uptime means it is restarting, which points at power or firmware.")
                    .escalate(5, "{device} keeps dropping off the network — flapping",
                            "The controller lost contact with this device again and again. A device that flaps like this usually has an unstable power supply (an overloaded PoE port or a failing injector), a bad cable, or a firmware problem, and its clients keep getting cut off."),
            Rule.of("EVT_AP_Isolated", Category.WIRELESS, Severity.MEDIUM, "device", "{device} lost its wired uplink (isolated)",
                    "This access point can no longer reach the network through its cable, so its Wi-Fi clients cannot reach anything either.",
                    CHECK_CABLE, "If it is meant to work as a wireless mesh point, check that a nearby AP is online to connect to."),
            Rule.of("EVT_\\w+_EliteDeviceOffline", Category.CONNECTIVITY, Severity.MEDIUM, "device", "{device} is offline",
                    "UniFi's monitoring reports this device offline.", CHECK_POWER, CHECK_CABLE),
            Rule.of("EVT_(AP|SW|GW|XG|DM|BB)_Connected", Category.CONNECTIVITY, Severity.LOW, "device", "{device} reconnected to the controller",
                    "The device came back online. If it was not restarted on purpose, look for a matching 'dropped off' finding."),
            Rule.of("EVT_(AP|SW|GW|XG|DM|BB)_RestartedUnknown", Category.SYSTEM, Severity.MEDIUM, "device", "{device} restarted unexpectedly",
                    "The device rebooted without anyone asking it to. Power dips and firmware crashes are the usual causes.",
                    CHECK_POWER, "Update it to the latest firmware if an update is available.", "If it repeats, put it (or its PoE switch) on a UPS."),
            Rule.of("EVT_\\w+_RestartProc", Category.SYSTEM, Severity.LOW, "device", "A service on {device} was restarted",
                    "A program inside the device stopped and was restarted automatically. Once is harmless; often suggests a firmware bug."),
            Rule.of("EVT_GW_DhcpPoolExhausted", Category.CONNECTIVITY, Severity.SEVERE, "device", "A DHCP address pool ran out on {device}",
                    "The gateway has no free IP addresses left to hand out, so new devices cannot join the network.",
                    "Shorten the DHCP lease time or enlarge the network's address range (Settings → Networks).", "Look for a device requesting many addresses (a misbehaving client or a DHCP loop)."),
            Rule.of("EVT_GW_DhcpPoolNearExhausted", Category.CONNECTIVITY, Severity.MEDIUM, "device", "A DHCP address pool is nearly full on {device}",
                    "The gateway is close to running out of IP addresses for new devices.",
                    "Enlarge the network's address range or shorten the lease time (Settings → Networks)."),
            Rule.of("EVT_GW_NetworkAutoScaleFailed", Category.SYSTEM, Severity.LOW, "device", "{device} could not auto-scale a network",
                    "The gateway tried to grow a network's address range automatically and failed."),
            Rule.of("EVT_GW_CommitError", Category.SYSTEM, Severity.MEDIUM, "device", "{device} failed to apply its configuration",
                    "A settings change could not be applied on the gateway, so it may be running with old or partial settings.",
                    "Re-open the last setting you changed and save it again.", "If it keeps failing, force a re-provision of the gateway (Devices → gateway → Manage → Force Provision)."),
            Rule.of("EVT_GW_IpReputationAlert", Category.SECURITY, Severity.MEDIUM, "device", "Traffic to or from an address with a bad reputation",
                    "A device on your network talked to an internet address that is known for malware, spam or attacks.",
                    "Find which client it was (see the sample messages) and scan it for malware.", "Keep IPS in blocking mode so such traffic is stopped."),
            Rule.of("EVT_AP_DetectRogueAP", Category.SECURITY, Severity.LOW, "essid", "A foreign access point '{essid}' was seen",
                    "One of your access points hears a Wi-Fi network that is not yours. Usually a neighbour; it matters only if it imitates your network name.",
                    "If it uses your network's name, find and remove it: it could be trying to catch your users' logins."),
            Rule.of("EVT_SW_DetectRogueDHCP", Category.SECURITY, Severity.SEVERE, "ip", "A rogue DHCP server ({ip}) is handing out addresses",
                    "A device that is not your gateway answers DHCP requests. Clients that take its answer get wrong settings and lose internet access, or have their traffic redirected.",
                    "Find the device from its MAC address and switch port in the sample message and unplug it.", "Usually it is a home router plugged in by mistake: disable its DHCP server or put it in access-point mode.", "Consider enabling DHCP Guard on the network."),
            Rule.of("EVT_AD_LoginFailed", Category.SECURITY, Severity.MEDIUM, "ip", "Failed admin login from {ip}",
                    "Someone tried to log in to the controller with a wrong user name or password.",
                    "If it was not you or a colleague, block the address on the gateway and make sure the controller's login page is not reachable from the internet.",
                    "Change admin passwords and enable multi-factor authentication for admin accounts.")
                    .escalate(5, "Likely brute-force attack on the admin login from {ip}",
                            "Many failed logins from one address in a short time: someone is guessing passwords for the controller."),
            Rule.of("EVT_AD_Login", Category.SECURITY, Severity.LOW, "ip", "Admin '{admin}' logged in from {ip}",
                    "An administrator logged in to the controller. Listed so you notice logins you do not expect."),
            Rule.of("EVT_\\w+_HostKeyMismatch", Category.SECURITY, Severity.MEDIUM, "device", "The SSH host key of {device} changed",
                    "The device presented a different identity than before. This happens after a factory reset or replacement; otherwise it can mean someone is impersonating it.",
                    "If the device was not reset or replaced, check it is the genuine device before trusting it again."),
            Rule.of("EVT_GW_IPSUpdateError", Category.SECURITY, Severity.LOW, "device", "{device} could not update its threat signatures",
                    "The intrusion prevention system could not download new signatures, so it will miss the newest threats until it can.",
                    "Check the gateway's internet access and DNS; the update is retried automatically."),
            Rule.of("EVT_(LC|WC)_Blocked", Category.SECURITY, Severity.LOW, "client", "Blocked client {client} tried to connect",
                    "A device you blocked tried to join the network and was refused."),
            Rule.of("EVT_SW_LoopDetected", Category.CONNECTIVITY, Severity.SEVERE, "device", "A network loop was detected on {device}",
                    "Two ports are connected to each other somewhere (directly or through other switches). Loops flood the network and can take it down.",
                    "Look for a cable plugged in at both ends into the same network (often a desk switch or a wall socket).", "Keep spanning tree (STP/RSTP) enabled on all switches."),
            Rule.of("EVT_SW_StpPortBlocking", Category.CONNECTIVITY, Severity.LOW, "device", "Spanning tree blocked a port on {device}",
                    "The switch shut a redundant path to prevent a loop. Expected if you have redundant links; otherwise look for a stray cable."),
            Rule.of("EVT_SW_PoeOverload", Category.POWER, Severity.MEDIUM, "device", "{device} ran out of PoE power",
                    "The switch could not power everything plugged into it, so some powered devices (APs, cameras, phones) may have switched off.",
                    "Move some powered devices to another switch or a PoE injector.", "Check the switch's PoE budget in its device page."),
            Rule.of("EVT_SW_PoeDisconnect", Category.POWER, Severity.LOW, "device", "A powered device was disconnected from {device}",
                    "A device that took power from the switch stopped drawing it (unplugged, or it failed)."),
            Rule.of("EVT_SW_Overheat", Category.SYSTEM, Severity.SEVERE, "device", "{device} is overheating",
                    "The switch reports a temperature high enough to damage it or make it shut down.",
                    "Make sure its vents are free and the room or rack is cooled.", "Reduce its PoE load if it powers many devices."),
            Rule.of("EVT_USP_Rps\\w*", Category.POWER, Severity.MEDIUM, "device", "Redundant power supply event on {device}",
                    "The redundant power supply switched over or lost a supply.", "Check both power inputs of the redundant power supply."),
            Rule.of("EVT_AP_RadarDetected", Category.WIRELESS, Severity.LOW, "device", "{device} heard radar and left channel {radar_channel}",
                    "Access points must leave some 5 GHz channels (DFS) when they hear weather or aviation radar. Clients briefly disconnect.",
                    "If it happens often, choose a non-DFS 5 GHz channel (36-48 or 149-165) for this AP."),
            Rule.of("EVT_AP_PossibleInterference", Category.WIRELESS, Severity.LOW, "device", "{device} reports possible interference",
                    "Something else is using the same radio channel heavily, which slows Wi-Fi down.", "Let the controller optimise channels, or pick a quieter channel for this AP."),
            Rule.of("EVT_AP_ChannelChanged", Category.WIRELESS, Severity.LOW, "device", "{device} changed its radio channel",
                    "The access point moved to another channel, usually to avoid interference."),
            Rule.of("EVT_\\w+_Upgraded", Category.FIRMWARE, Severity.LOW, "device", "{device} was upgraded",
                    "The device's firmware was updated."),
            Rule.of("EVT_\\w+_UpgradeScheduled", Category.FIRMWARE, Severity.LOW, "device", "A firmware upgrade is scheduled for {device}",
                    "The device will update its firmware at the scheduled time and restart."),
            Rule.of("EVT_\\w+_FirmwareCheckFailed", Category.FIRMWARE, Severity.LOW, "device", "Checking for firmware updates failed",
                    "The controller could not reach Ubiquiti's update servers; it will try again."),
            Rule.of("EVT_\\w+_FirmwareDownloadFailed", Category.FIRMWARE, Severity.MEDIUM, "device", "A firmware download failed for {device}",
                    "An update could not be downloaded, so the device stays on its current firmware.", "Check the controller's internet access and DNS, then start the update again."),
            Rule.of("EVT_AD_UpdateAvailable", Category.FIRMWARE, Severity.LOW, "key", "A controller update is available",
                    "A newer version of the UniFi software is available.", "Read the release notes and update at a quiet time."),
            Rule.of("EVT_\\w+_LicenseInvalid", Category.SYSTEM, Severity.MEDIUM, "device", "A licence is invalid on {device}",
                    "A feature that needs a licence or subscription is not licensed any more.", "Check the subscription in your UniFi account."),
            Rule.of("EVT_AD_(HD|MicroSD)UsableSpace", Category.SYSTEM, Severity.MEDIUM, "key", "The console's storage is running out",
                    "The console's disk or SD card is nearly full. Recordings, backups and logs may stop being saved.",
                    "Delete old backups or recordings, or replace the storage with a larger one."));

    /** Everyday noise: counted in the report's activity line, never a finding. */
    static final Pattern NOISE = Pattern.compile("EVT_(WU|WG|LU|LG|HS)_\\w+");

    /** WAN state words that mean the link went down or came back (field "state" of EVT_GW_WANTransition). */
    static final Set<String> WAN_DOWN = Set.of("down", "inactive", "failed", "failover", "disconnected", "offline");
    static final Set<String> WAN_UP = Set.of("up", "active", "connected", "online", "restored");

    /** Suricata class types in words a non-expert reads. */
    static final Map<String, String> IPS_CATEGORY_WORDS = Map.ofEntries(
            Map.entry("a network trojan was detected", "a device on your network may be infected with malware"),
            Map.entry("misc attack", "a known attack, usually from an address on a block list"),
            Map.entry("attempted information leak", "someone probing for information about your network"),
            Map.entry("potentially bad traffic", "traffic that often accompanies attacks"),
            Map.entry("attempted administrator privilege gain", "an attempt to take over a system"),
            Map.entry("attempted user privilege gain", "an attempt to gain access to a system"),
            Map.entry("web application attack", "an attack on a web server or web application"),
            Map.entry("detection of a network scan", "someone scanning your network for open ports"),
            Map.entry("potential corporate privacy violation", "traffic your policy may not allow (peer-to-peer, remote access tools)"),
            Map.entry("attempted denial of service", "an attempt to overload a service"),
            Map.entry("misc activity", "unusual activity worth a look"),
            Map.entry("malware command and control activity detected", "a device on your network may be controlled by attackers"));

    /** Device-health thresholds: a warning and a critical level, and the severity each gives. */
    record Threshold(String metric, String label, double warning, double critical, Severity atWarning, Severity atCritical, String unit) {}

    static final List<Threshold> DEFAULT_THRESHOLDS = List.of(
            new Threshold("temperature", "temperature", 70, 80, Severity.MEDIUM, Severity.SEVERE, "°C"),
            new Threshold("cpu", "CPU load", 85, 95, Severity.LOW, Severity.MEDIUM, "%"),
            new Threshold("memory", "memory use", 90, 97, Severity.LOW, Severity.MEDIUM, "%"),
            new Threshold("poe", "PoE budget use", 80, 95, Severity.LOW, Severity.MEDIUM, "%"),
            new Threshold("uptime", "uptime", 180, 365, Severity.LOW, Severity.MEDIUM, "days"));

    record Finding(String site, Severity severity, Category category, String title, String explanation, List<String> remediation,
                   int count, Instant firstSeen, Instant lastSeen, String device, String client, List<String> eventKeys,
                   List<String> sampleMessages, String snapshotId) {
        /** Snapshot findings (device health now) have an id so a run can tell whether they are new. */
        boolean snapshot() { return snapshotId != null; }
    }

    record DeviceRow(String site, String name, String mac, String model, String type, boolean online, Double cpu, Double mem,
                     Double temperature, Long uptime, String firmware, String upgradeTo, List<String> issues) {}

    record Explained(List<Finding> findings, List<DeviceRow> deviceHealth, Map<String, Integer> unexplained, Map<String, Integer> activity) {}

    static final class Explainer {
        private final List<Threshold> thresholds;
        private final ZoneId zone;

        Explainer(List<Threshold> thresholds, ZoneId zone) {
            this.thresholds = thresholds;
            this.zone = zone;
        }

        /**
         * Folds events into findings as they stream in: memory grows with the number of distinct findings, not with
         * the number of events (a group keeps its count, first and last time, one event to name it, three samples).
         */
        final class Accumulator implements Collector.Sink {
            private final Map<String, Group> groups = new LinkedHashMap<>();
            private final Map<String, IpsGroup> ipsGroups = new LinkedHashMap<>();
            private final List<Event> wan = new ArrayList<>();
            private final Map<String, Integer> unexplained = new java.util.TreeMap<>(), activity = new java.util.TreeMap<>();
            private final Map<String, Rule> fallbackRules = new java.util.HashMap<>();
            private final Map<String, Optional<Rule>> ruleByKey = new java.util.HashMap<>(); // a handful of keys, 100 000s of events
            private final Map<String, Boolean> noiseByKey = new java.util.HashMap<>();

            @Override
            public void event(Event e) {
                if (e.key().equals("EVT_GW_WANTransition")) { wan.add(e); return; }
                if (noiseByKey.computeIfAbsent(e.key(), k -> NOISE.matcher(k).matches())) { activity.merge(e.key(), 1, Integer::sum); return; }
                Rule rule = ruleByKey.computeIfAbsent(e.key(), k -> RULES.stream().filter(r -> r.keys().matcher(k).matches()).findFirst()).orElse(null);
                if (rule == null && e.origin().equals("system-log")) rule = systemLogFallback(e);
                if (rule == null) { unexplained.merge(e.key(), 1, Integer::sum); return; }
                Rule r = rule;
                groups.computeIfAbsent(e.site() + "|" + r.keys().pattern() + "|" + e.key() + "|" + groupValue(r, e), k -> new Group(r)).add(e);
            }

            @Override
            public void ips(IpsAlert a) {
                ipsGroups.computeIfAbsent(a.site() + "|" + a.sid() + "|" + a.signature(), k -> new IpsGroup()).add(a);
            }

            Explained finish(List<Device> devices, List<Subsystem> health) {
                List<Finding> findings = new ArrayList<>();
                Map<String, Device> byMac = new java.util.HashMap<>();
                devices.forEach(d -> byMac.put(d.mac().toLowerCase(Locale.ROOT), d));
                groups.values().forEach(g -> findings.add(finding(g, byMac)));
                wan.sort(java.util.Comparator.comparing(Event::time));
                findings.addAll(wanOutages(wan, byMac));
                ipsGroups.values().forEach(g -> findings.add(ipsFinding(g)));
                List<DeviceRow> rows = new ArrayList<>();
                for (Device d : devices) rows.add(deviceHealth(d, findings));
                for (Subsystem s : health) {
                    if (s.status().equals("ok") || s.status().equals("unknown")) continue;
                    boolean internet = s.name().equals("wan") || s.name().equals("www");
                    findings.add(new Finding(s.site(), internet ? Severity.MEDIUM : Severity.LOW, internet ? Category.INTERNET : Category.CONNECTIVITY,
                            "The controller rates " + subsystemWords(s.name()) + " as '" + s.status() + "' right now",
                            "This is the controller's own health summary for that part of the network; the findings above usually say why.",
                            internet ? List.of("Open the controller's dashboard to see which device or link is affected.") : List.of(),
                            1, null, null, null, null, List.of(), List.of(), "health:" + s.site() + ":" + s.name() + ":" + s.status()));
                }
                findings.sort(java.util.Comparator.comparing(Finding::severity).thenComparing(Finding::category)
                        .thenComparing(f -> f.firstSeen() == null ? Instant.MAX : f.firstSeen()));
                return new Explained(findings, rows, unexplained, activity);
            }

            /** v2 entries with no rule for their key: the controller's own severity and title, when it rates them above low. */
            private Rule systemLogFallback(Event e) {
                Severity s = switch (String.valueOf(e.severityHint())) {
                    case "VERY_HIGH", "HIGH" -> Severity.SEVERE;
                    case "MEDIUM" -> Severity.MEDIUM;
                    default -> null;
                };
                if (s == null) return null;
                return fallbackRules.computeIfAbsent(e.key() + "|" + s, k -> {
                    Category c = switch (String.valueOf(e.subsystem())) {
                        case "SECURITY", "AUDIT" -> Category.SECURITY;
                        case "INTERNET_AND_WAN", "VPN" -> Category.INTERNET;
                        case "POWER" -> Category.POWER;
                        case "SOFTWARE_UPDATES" -> Category.FIRMWARE;
                        case "CLIENT_DEVICES" -> Category.WIRELESS;
                        case "UNIFI_DEVICES", "UNIFI_ETHERNET_PORTS" -> Category.CONNECTIVITY;
                        default -> Category.SYSTEM;
                    };
                    String title = Collector.fill(e.raw().path("title_raw").asText(""), e.raw().path("parameters"));
                    return Rule.of(Pattern.quote(e.key()), c, s, "device", title.isBlank() ? e.key() : title.replace("{", "(").replace("}", ")"),
                            "The controller rates this " + e.severityHint().toLowerCase(Locale.ROOT).replace('_', ' ') + " in its system log; see the sample message for its own words.",
                            "Open the controller's system log for details.");
                });
            }
        }

        /** The events of one finding-to-be. */
        static final class Group {
            final Rule rule;
            Event first;
            Instant last;
            int count;
            final List<String> samples = new ArrayList<>(3);
            final Set<String> keys = new LinkedHashSet<>();

            Group(Rule rule) { this.rule = rule; }

            void add(Event e) {
                count++;
                if (first == null || e.time().isBefore(first.time())) first = e;
                if (last == null || e.time().isAfter(last)) last = e.time();
                if (samples.size() < 3 && !e.message().isBlank() && !samples.contains(e.message())) samples.add(e.message());
                keys.add(e.key());
            }
        }

        static final class IpsGroup {
            IpsAlert first;
            Instant last;
            int count, allowed, worst = 9;
            final Map<String, Long> sources = new java.util.HashMap<>();
            final Map<String, String> countries = new java.util.HashMap<>();

            void add(IpsAlert a) {
                count++;
                if (first == null || a.time().isBefore(first.time())) first = a;
                if (last == null || a.time().isAfter(last)) last = a.time();
                if (!a.blocked()) allowed++;
                worst = Math.min(worst, a.severity());
                sources.merge(a.srcIp(), 1L, Long::sum);
                if (!a.srcCountry().isBlank()) countries.put(a.srcIp(), a.srcCountry());
            }
        }

        private static String groupValue(Rule rule, Event e) {
            return switch (rule.groupBy()) {
                case "device" -> String.valueOf(e.deviceMac());
                case "client" -> String.valueOf(e.client());
                case "key" -> "";
                default -> e.field(rule.groupBy());
            };
        }

        private Finding finding(Group g, Map<String, Device> byMac) {
            Rule rule = g.rule;
            boolean escalated = rule.escalateAt() > 0 && g.count >= rule.escalateAt();
            String device = deviceName(g.first, byMac);
            String title = fill(escalated ? rule.escalatedTitle() : rule.title(), g.first, device) + when(g.count, g.first.time(), g.last);
            return new Finding(g.first.site(), escalated ? Severity.SEVERE : rule.severity(), rule.category(), title,
                    escalated ? rule.escalatedExplanation() : rule.explanation(), rule.severity() == Severity.LOW && !escalated ? List.of() : rule.steps(),
                    g.count, g.first.time(), g.last, device, g.first.client(), List.copyOf(g.keys), List.copyOf(g.samples), null);
        }

        static String deviceName(Event e, Map<String, Device> byMac) {
            if (e.deviceName() != null && !e.deviceName().isBlank()) return e.deviceName();
            if (e.deviceMac() == null) return null;
            Device d = byMac.get(e.deviceMac().toLowerCase(Locale.ROOT));
            return d != null ? d.label() : e.deviceMac();
        }

        /** {device}, {client} and record fields; a placeholder with no value reads "a device" / "unknown". */
        static String fill(String template, Event e, String device) {
            return fillPlaceholders(template, name -> switch (name) {
                case "device" -> device == null ? "A device" : device;
                case "client" -> e.client() == null ? "unknown" : e.client();
                default -> e.field(name).isBlank() ? "unknown" : e.field(name);
            });
        }

        /** " (at 02:10)" or " (14 times, 02:10–05:40)", with dates when the span is not all today. */
        String when(int count, Instant first, Instant last) {
            if (count == 1) return " (at " + clock(first, first, last) + ")";
            return " (" + count + " times, " + clock(first, first, last) + "–" + clock(last, first, last) + ")";
        }

        String clock(Instant t, Instant first, Instant last) {
            ZonedDateTime z = t.atZone(zone);
            boolean sameDay = first.atZone(zone).toLocalDate().equals(last.atZone(zone).toLocalDate())
                    && first.atZone(zone).toLocalDate().equals(Instant.now().atZone(zone).toLocalDate());
            return z.format(DateTimeFormatter.ofPattern(sameDay ? "HH:mm" : "MMM d HH:mm", Locale.ENGLISH));
        }

        /** Pairs each WAN interface's down and up transitions (in time order) into outages with durations. */
        List<Finding> wanOutages(List<Event> wan, Map<String, Device> byMac) {
            Map<String, List<Event>> byIface = new LinkedHashMap<>();
            for (Event e : wan) byIface.computeIfAbsent(e.site() + "|" + e.deviceMac() + "|" + e.field("iface"), k -> new ArrayList<>()).add(e);
            List<Finding> out = new ArrayList<>();
            for (List<Event> events : byIface.values()) {
                Event first = events.get(0);
                Instant lastTime = events.get(events.size() - 1).time();
                String iface = first.field("iface").isBlank() ? "WAN" : first.field("iface");
                List<Duration> outages = new ArrayList<>();
                Instant downSince = null;
                for (Event e : events) {
                    String state = e.field("state").toLowerCase(Locale.ROOT);
                    if (WAN_DOWN.contains(state) && downSince == null) downSince = e.time();
                    else if (WAN_UP.contains(state) && downSince != null) {
                        outages.add(Duration.between(downSince, e.time()));
                        downSince = null;
                    }
                }
                String device = deviceName(first, byMac);
                List<String> samples = events.stream().map(Event::message).filter(m -> !m.isBlank()).distinct().limit(3).toList();
                Duration total = outages.stream().reduce(Duration.ZERO, Duration::plus);
                Duration longest = outages.stream().max(Duration::compareTo).orElse(Duration.ZERO);
                String title;
                Severity severity;
                if (downSince != null) {
                    severity = Severity.SEVERE;
                    title = "Internet connection (" + iface + ") went down at " + clock(downSince, downSince, lastTime) + " and has not come back";
                } else if (!outages.isEmpty()) {
                    severity = total.toMinutes() >= 30 ? Severity.SEVERE : Severity.MEDIUM;
                    title = outages.size() == 1
                            ? "Internet connection (" + iface + ") was down for " + human(total) + " (" + clock(first.time(), first.time(), lastTime)
                            + "–" + clock(lastTime, first.time(), lastTime) + ")"
                            : "Internet connection (" + iface + ") went down " + outages.size() + " times, " + human(total) + " offline in all (longest " + human(longest) + ")";
                } else {
                    severity = Severity.LOW;
                    title = "Internet connection (" + iface + ") changed state" + when(events.size(), first.time(), lastTime);
                }
                out.add(new Finding(first.site(), severity, Category.INTERNET, title,
                        "The gateway " + (device == null ? "" : "(" + device + ") ") + "lost its internet link on " + iface
                                + ". While it was down, nothing on your network could reach the internet unless a second WAN took over.",
                        severity == Severity.LOW ? List.of() : List.of("Check the modem or ONT: restart it if its lights show no connection.",
                                "Check the cable between the modem and the gateway's WAN port.",
                                "If outages repeat, note the times and report them to your internet provider."),
                        events.size(), first.time(), lastTime, device, null, List.of("EVT_GW_WANTransition"), samples, null));
            }
            return out;
        }

        /** One signature's alerts: detected-but-allowed is worse than blocked; top sources; plain words. */
        Finding ipsFinding(IpsGroup g) {
            IpsAlert first = g.first;
            Severity severity = g.allowed == 0 ? (g.worst == 1 ? Severity.MEDIUM : Severity.LOW) : g.worst == 1 ? Severity.SEVERE : Severity.MEDIUM;
            String top = g.sources.entrySet().stream()
                    .sorted(Map.Entry.<String, Long>comparingByValue().reversed().thenComparing(Map.Entry.comparingByKey())).limit(3)
                    .map(en -> en.getKey() + (g.countries.containsKey(en.getKey()) ? " (" + g.countries.get(en.getKey()) + ")" : "") + " ×" + en.getValue())
                    .reduce((a, b) -> a + ", " + b).orElse("");
            String words = IPS_CATEGORY_WORDS.getOrDefault(first.category().toLowerCase(Locale.ROOT), first.category().isBlank() ? "suspicious traffic" : first.category());
            String action = g.allowed == 0 ? "blocked" : g.allowed == g.count ? "detected but NOT blocked" : g.allowed + " of " + g.count + " NOT blocked";
            String title = "Intrusion prevention: " + first.signature() + (first.cybersecure() ? " [Cybersecure]" : "") + " — " + action
                    + when(g.count, first.time(), g.last);
            String explanation = "The gateway's intrusion prevention matched this signature: " + words + ". Top sources: " + top + "."
                    + (g.allowed == 0 ? " The traffic was blocked." : " Some of it was only detected and let through.");
            List<String> steps = severity == Severity.LOW ? List.of() : List.of(
                    g.allowed > 0 ? "Switch IPS from 'detect' to 'block' mode (Settings → Security → Intrusion Prevention) so such traffic is stopped."
                            : "No action is needed for blocked traffic unless it repeats from inside your network.",
                    "If the source is inside your network, scan that device for malware.",
                    "If the source is outside and keeps coming back, block its address on the gateway.");
            return new Finding(first.site(), severity, Category.SECURITY, title, explanation, steps, g.count, first.time(), g.last,
                    null, null, List.of("EVT_IPS_IpsAlert"), List.of("signature " + first.sid() + ": " + first.signature()), null);
        }

        /** A device's row in the health table; each issue at medium or above also becomes a (snapshot) finding. */
        DeviceRow deviceHealth(Device d, List<Finding> findings) {
            List<String> issues = new ArrayList<>();
            boolean online = d.state() == 1;
            if (d.adopted() && d.state() == 0) {
                issue(d, issues, findings, "offline", Severity.SEVERE, Category.CONNECTIVITY, d.label() + " is offline",
                        "The controller cannot reach this device right now. Anything behind it is cut off.", List.of(CHECK_POWER, CHECK_CABLE));
            }
            if (online) {
                for (Threshold t : thresholds) {
                    Double v = switch (t.metric()) {
                        case "temperature" -> d.temperature();
                        case "cpu" -> d.cpu();
                        case "memory" -> d.mem();
                        case "poe" -> d.poeBudget() == null || d.poeUsed() == null || d.poeBudget() <= 0 ? null : 100 * d.poeUsed() / d.poeBudget();
                        case "uptime" -> d.uptime() == null ? null : d.uptime() / 86_400.0;
                        default -> null;
                    };
                    boolean overheating = t.metric().equals("temperature") && d.overheating();
                    if ((v == null || v < t.warning()) && !overheating) continue;
                    boolean critical = overheating || v >= t.critical();
                    Severity s = critical ? t.atCritical() : t.atWarning();
                    String figure = v == null ? "overheating" : String.format(Locale.ROOT, "%.0f %s", v, t.unit());
                    String[] words = thresholdWords(t.metric());
                    issue(d, issues, findings, t.metric(), s, t.metric().equals("poe") ? Category.POWER : t.metric().equals("uptime") ? Category.FIRMWARE : Category.SYSTEM,
                            d.label() + " " + words[0] + " (" + figure + ")", words[1], List.of(words[2]));
                }
                if (d.upgradable()) {
                    issue(d, issues, findings, "firmware", Severity.LOW, Category.FIRMWARE,
                            d.label() + ": firmware update available" + (d.upgradeTo() == null ? "" : " (" + d.version() + " → " + d.upgradeTo() + ")"),
                            "A newer firmware is available for this device.", List.of("Update it at a quiet time: the device restarts."));
                }
            }
            return new DeviceRow(d.site(), d.label(), d.mac(), d.model(), d.type(), online, d.cpu(), d.mem(), d.temperature(), d.uptime(),
                    d.version(), d.upgradable() ? d.upgradeTo() : null, issues);
        }

        private static String[] thresholdWords(String metric) {
            return switch (metric) {
                case "temperature" -> new String[]{"is running hot", "Heat shortens a device's life and can make it throttle or shut down.",
                        "Free its vents, improve cooling of the room or rack, and reduce its PoE load."};
                case "cpu" -> new String[]{"is working at high CPU load", "A busy processor slows the device down; sustained, it can drop traffic.",
                        "Check what load it carries (IPS, traffic shaping, many clients) and restart it if the load does not come down."};
                case "memory" -> new String[]{"is short of memory", "A device that runs out of memory can crash and restart.",
                        "Restart it at a quiet time and update its firmware."};
                case "poe" -> new String[]{"is near its PoE power budget", "If the budget runs out, powered devices plugged into it switch off.",
                        "Move some powered devices to another switch or an injector."};
                default -> new String[]{"has been running for a very long time", "A device that never restarts has most likely missed firmware and security updates.",
                        "Check for a firmware update and install it at a quiet time."};
            };
        }

        private static void issue(Device d, List<String> issues, List<Finding> findings, String what, Severity s, Category c,
                                  String title, String explanation, List<String> steps) {
            issues.add(s.word() + ": " + title);
            findings.add(new Finding(d.site(), s, c, title, explanation, s == Severity.LOW ? List.of() : steps, 1, null, null, d.label(), null,
                    List.of(), List.of(), "device:" + d.site() + ":" + d.mac() + ":" + what + ":" + s.word()));
        }

        private static String subsystemWords(String name) {
            return switch (name) {
                case "wan" -> "the internet connection (WAN)";
                case "www" -> "internet access (WWW)";
                case "wlan" -> "Wi-Fi (WLAN)";
                case "lan" -> "the wired network (LAN)";
                case "vpn" -> "VPN";
                default -> name;
            };
        }

        static String human(Duration d) {
            long m = Math.max(1, Math.round(d.getSeconds() / 60.0));
            return m < 60 ? m + " min" : m / 60 + " h " + (m % 60) + " min";
        }
    }

    // =====================================================================================
    // Report: text for a terminal or cron mail, JSON for tools, HTML for a mail client
    // =====================================================================================

    enum Format { TEXT, JSON, HTML }

    record Report(String controllerUrl, String kind, String model, String version, String site, String siteLabel, Instant from, Instant to,
                  Explained explained, Map<String, String> sources, Map<String, String> notes, int eventsRead, int malformed,
                  int requests, long bytesRead, ZoneId zone) {}

    /** What everyday noise is called in the activity line. */
    static final Map<String, String> ACTIVITY_WORDS = Map.of(
            "EVT_WU_Connected", "Wi-Fi connections", "EVT_WU_Disconnected", "Wi-Fi disconnections",
            "EVT_WU_Roam", "Wi-Fi roams between access points", "EVT_WU_RoamRadio", "Wi-Fi band changes",
            "EVT_WG_Connected", "guest Wi-Fi connections", "EVT_WG_Disconnected", "guest Wi-Fi disconnections",
            "EVT_LU_Connected", "wired connections", "EVT_LU_Disconnected", "wired disconnections");

    static final class Reports {
        static final DateTimeFormatter STAMP = DateTimeFormatter.ofPattern("MMM d HH:mm", Locale.ENGLISH);

        static String text(Report r, boolean colour) {
            StringBuilder b = new StringBuilder();
            String reset = colour ? "\u001b[0m" : "", bold = colour ? "\u001b[1m" : "";
            Map<Severity, String> tint = colour ? Map.of(Severity.SEVERE, "\u001b[1;31m", Severity.MEDIUM, "\u001b[1;33m", Severity.LOW, "\u001b[1;36m")
                    : Map.of(Severity.SEVERE, "", Severity.MEDIUM, "", Severity.LOW, "");
            List<Finding> findings = r.explained().findings();
            b.append(bold).append(NAME).append(" report — site ").append(r.siteLabel()).append(reset).append('\n');
            b.append("Controller: ").append(r.controllerUrl()).append(" (").append(r.kind())
                    .append(r.version() == null ? "" : ", Network " + r.version()).append(")\n");
            b.append("Period: ").append(STAMP.format(r.from().atZone(r.zone()))).append(" – ").append(STAMP.format(r.to().atZone(r.zone())))
                    .append(" (").append(r.zone().getId()).append(")\n");
            b.append("Summary: ").append(summary(findings)).append("\n");
            for (Severity s : Severity.values()) {
                List<Finding> group = findings.stream().filter(f -> f.severity() == s).toList();
                if (group.isEmpty()) continue;
                b.append('\n').append(tint.get(s)).append(s.name()).append(reset).append('\n');
                int n = 0;
                for (Finding f : group) {
                    b.append(String.format(Locale.ROOT, "%3d. ", ++n)).append(bold).append(f.title()).append(reset)
                            .append(r.site().equals("all") ? "  [" + f.site() + "]" : "").append("  (").append(f.category().word()).append(")\n");
                    wrap(b, f.explanation(), "     ", "     ");
                    if (!f.remediation().isEmpty()) {
                        b.append("     What to do:\n");
                        int k = 0;
                        for (String step : f.remediation()) wrap(b, step, "       " + (++k) + ". ", "          ");
                    }
                    if (!f.sampleMessages().isEmpty() && f.severity() != Severity.LOW)
                        wrap(b, "Controller said: " + f.sampleMessages().get(0), "     ", "     ");
                }
            }
            List<DeviceRow> rows = r.explained().deviceHealth();
            if (!rows.isEmpty()) {
                b.append("\nDevice health\n");
                String fmt = "  %-22s %-10s %-8s %5s %5s %6s %8s  %s%n";
                b.append(String.format(Locale.ROOT, fmt, "DEVICE", "MODEL", "STATUS", "CPU", "MEM", "TEMP", "UPTIME", "FIRMWARE"));
                for (DeviceRow d : rows) {
                    b.append(String.format(Locale.ROOT, fmt, cut(d.name(), 22), cut(String.valueOf(d.model()), 10), d.online() ? "online" : "OFFLINE",
                            pct(d.cpu()), pct(d.mem()), d.temperature() == null ? "-" : String.format(Locale.ROOT, "%.0f°C", d.temperature()),
                            d.uptime() == null ? "-" : days(d.uptime()), String.valueOf(d.firmware()) + (d.upgradeTo() == null ? "" : " → " + d.upgradeTo())));
                }
            }
            Map<String, Integer> activity = r.explained().activity();
            if (!activity.isEmpty()) {
                b.append("\nEveryday activity (normal, not a problem): ");
                b.append(String.join(", ", activity.entrySet().stream().map(e -> e.getValue() + " " + ACTIVITY_WORDS.getOrDefault(e.getKey(), e.getKey())).toList())).append('\n');
            }
            Map<String, Integer> unexplained = r.explained().unexplained();
            if (!unexplained.isEmpty()) {
                int total = unexplained.values().stream().mapToInt(Integer::intValue).sum();
                b.append('\n').append(total).append(total == 1 ? " event" : " events").append(" of ").append(unexplained.size())
                        .append(unexplained.size() == 1 ? " kind" : " kinds").append(" we don't explain yet: ")
                        .append(String.join(", ", unexplained.entrySet().stream().map(e -> e.getKey() + " (" + e.getValue() + ")").toList())).append('\n');
            }
            if (!r.notes().isEmpty()) {
                b.append('\n');
                r.notes().values().forEach(n -> b.append("Note: ").append(n).append('\n'));
            }
            if (r.malformed() > 0) b.append("Note: ").append(r.malformed()).append(" records could not be read and were skipped.\n");
            return b.toString();
        }

        static JsonNode json(Report r) {
            ObjectNode doc = JSON.createObjectNode();
            doc.put("tool", NAME + " " + VERSION);
            doc.putObject("controller").put("url", r.controllerUrl()).put("kind", r.kind()).put("model", r.model()).put("version", r.version());
            doc.put("site", r.site());
            doc.putObject("period").put("from", r.from().toString()).put("to", r.to().toString());
            var findings = doc.putArray("findings");
            for (Finding f : r.explained().findings()) {
                ObjectNode o = findings.addObject().put("severity", f.severity().word()).put("category", f.category().word())
                        .put("title", f.title()).put("explanation", f.explanation());
                f.remediation().forEach(o.putArray("remediation")::add);
                o.put("count", f.count()).put("firstSeen", f.firstSeen() == null ? null : f.firstSeen().toString())
                        .put("lastSeen", f.lastSeen() == null ? null : f.lastSeen().toString()).put("device", f.device()).put("client", f.client())
                        .put("site", f.site());
                f.eventKeys().forEach(o.putArray("eventKeys")::add);
                f.sampleMessages().forEach(o.putArray("sampleMessages")::add);
            }
            var devices = doc.putArray("deviceHealth");
            for (DeviceRow d : r.explained().deviceHealth()) {
                ObjectNode o = devices.addObject().put("site", d.site()).put("name", d.name()).put("mac", d.mac()).put("model", d.model())
                        .put("type", d.type()).put("status", d.online() ? "online" : "offline").put("cpu", d.cpu()).put("memory", d.mem())
                        .put("temperature", d.temperature()).put("uptimeSeconds", d.uptime()).put("firmware", d.firmware()).put("upgradeTo", d.upgradeTo());
                d.issues().forEach(o.putArray("issues")::add);
            }
            var unexplained = doc.putArray("unexplained");
            r.explained().unexplained().forEach((k, v) -> unexplained.addObject().put("key", k).put("count", v));
            ObjectNode activity = doc.putObject("activity");
            r.explained().activity().forEach(activity::put);
            ObjectNode sources = doc.putObject("sources");
            r.sources().forEach(sources::put);
            doc.putObject("stats").put("eventsRead", r.eventsRead()).put("malformed", r.malformed()).put("requests", r.requests())
                    .put("bytesRead", r.bytesRead());
            return doc;
        }

        static String html(Report r) {
            StringBuilder b = new StringBuilder();
            b.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>").append(esc(NAME + " report — " + r.siteLabel())).append("</title>\n")
                    .append("<style>body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:860px;margin:24px auto;color:#222;line-height:1.45}")
                    .append("h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}h2.severe,b.severe{color:#b00020}h2.medium{color:#a05a00}h2.low{color:#00607a}")
                    .append(".finding{margin:14px 0;padding:10px 14px;border-left:4px solid #ccc;background:#fafafa}.finding.severe{border-color:#b00020}")
                    .append(".finding.medium{border-color:#e08a00}.finding.low{border-color:#2a9bb5}.title{font-weight:600;color:#222}.meta{color:#666;font-size:13px}")
                    .append("table{border-collapse:collapse;font-size:13px}td,th{padding:4px 8px;border-bottom:1px solid #eee;text-align:left}</style></head><body>\n");
            b.append("<h1>").append(esc(NAME)).append(" report — site ").append(esc(r.siteLabel())).append("</h1>\n<p class=\"meta\">Controller ")
                    .append(esc(r.controllerUrl())).append(" (").append(esc(r.kind())).append(r.version() == null ? "" : ", Network " + esc(r.version()))
                    .append(")<br>Period ").append(esc(STAMP.format(r.from().atZone(r.zone())))).append(" – ").append(esc(STAMP.format(r.to().atZone(r.zone()))))
                    .append(" (").append(esc(r.zone().getId())).append(")</p>\n");
            b.append("<p><b>Summary:</b> ").append(esc(summary(r.explained().findings()))).append("</p>\n");
            for (Severity s : Severity.values()) {
                List<Finding> group = r.explained().findings().stream().filter(f -> f.severity() == s).toList();
                if (group.isEmpty()) continue;
                b.append("<h2 class=\"").append(s.word()).append("\">").append(s.name()).append(" (").append(group.size()).append(")</h2>\n");
                for (Finding f : group) {
                    b.append("<div class=\"finding ").append(s.word()).append("\"><div class=\"title\">").append(esc(f.title())).append("</div>")
                            .append("<div class=\"meta\">").append(esc(f.category().word())).append(r.site().equals("all") ? " · " + esc(f.site()) : "").append("</div>")
                            .append("<p>").append(esc(f.explanation())).append("</p>");
                    if (!f.remediation().isEmpty()) {
                        b.append("<ol>");
                        f.remediation().forEach(step -> b.append("<li>").append(esc(step)).append("</li>"));
                        b.append("</ol>");
                    }
                    if (!f.sampleMessages().isEmpty()) b.append("<div class=\"meta\">Controller said: ").append(esc(f.sampleMessages().get(0))).append("</div>");
                    b.append("</div>\n");
                }
            }
            if (!r.explained().deviceHealth().isEmpty()) {
                b.append("<h2>Device health</h2>\n<table><tr><th>Device</th><th>Model</th><th>Status</th><th>CPU</th><th>Memory</th><th>Temp</th><th>Uptime</th><th>Firmware</th></tr>\n");
                for (DeviceRow d : r.explained().deviceHealth()) {
                    b.append("<tr><td>").append(esc(d.name())).append("</td><td>").append(esc(String.valueOf(d.model()))).append("</td><td>")
                            .append(d.online() ? "online" : "<b class=\"severe\">OFFLINE</b>").append("</td><td>").append(pct(d.cpu())).append("</td><td>")
                            .append(pct(d.mem())).append("</td><td>").append(d.temperature() == null ? "-" : String.format(Locale.ROOT, "%.0f °C", d.temperature()))
                            .append("</td><td>").append(d.uptime() == null ? "-" : days(d.uptime())).append("</td><td>").append(esc(String.valueOf(d.firmware())))
                            .append(d.upgradeTo() == null ? "" : " → " + esc(d.upgradeTo())).append("</td></tr>\n");
                }
                b.append("</table>\n");
            }
            if (!r.explained().unexplained().isEmpty()) {
                b.append("<h2>Not explained yet</h2>\n<p>");
                b.append(esc(String.join(", ", r.explained().unexplained().entrySet().stream().map(e -> e.getKey() + " (" + e.getValue() + ")").toList())));
                b.append("</p>\n");
            }
            r.notes().values().forEach(n -> b.append("<p class=\"meta\">").append(esc(n)).append("</p>\n"));
            return b.append("</body></html>\n").toString();
        }

        /** "7 severe, 2 medium, 8 low", or "all quiet — nothing that needs you". */
        static String summary(List<Finding> findings) {
            Map<Severity, Long> counts = new java.util.EnumMap<>(Severity.class);
            findings.forEach(f -> counts.merge(f.severity(), 1L, Long::sum));
            return findings.isEmpty() ? "all quiet — nothing that needs you"
                    : String.join(", ", counts.entrySet().stream().map(e -> e.getValue() + " " + e.getKey().word()).toList());
        }

        static String esc(String s) {
            if (s == null) return "";
            StringBuilder b = new StringBuilder(s.length());
            for (char c : s.toCharArray()) {
                switch (c) {
                    case '<' -> b.append("&lt;");
                    case '>' -> b.append("&gt;");
                    case '&' -> b.append("&amp;");
                    case '"' -> b.append("&quot;");
                    case '\'' -> b.append("&#39;");
                    default -> b.append(c);
                }
            }
            return b.toString();
        }

        /** Appends text wrapped at 100 columns: the first line after {@code first}, the rest after {@code rest}. */
        private static void wrap(StringBuilder b, String text, String first, String rest) {
            int width = 100 - rest.length(), col = first.length() - rest.length();
            b.append(first);
            for (String word : text.split(" ")) {
                if (col > 0 && col + word.length() + 1 > width) {
                    b.append('\n').append(rest);
                    col = 0;
                }
                if (col > 0) { b.append(' '); col++; }
                b.append(word);
                col += word.length();
            }
            b.append('\n');
        }

        private static String cut(String s, int n) { return s.length() <= n ? s : s.substring(0, n - 1) + "…"; }

        private static String pct(Double v) { return v == null ? "-" : String.format(Locale.ROOT, "%.0f%%", v); }

        private static String days(long seconds) {
            if (seconds >= 86_400) return seconds / 86_400 + "d";
            return seconds >= 3600 ? seconds / 3600 + "h" : Math.max(1, seconds / 60) + "m";
        }
    }

    // =====================================================================================
    // Deliver: stdout, a report folder, mail, a webhook — all or nothing for the state cursor
    // =====================================================================================

    /** One place a report goes. A failure is a ScannerException whose message is one line naming the channel. */
    interface Channel {
        String name();

        void deliver(Report report);
    }

    static final class Channels {
        /** Stdout in one-shot mode, then every configured channel; the daemon delivers only to configured channels. */
        static List<Channel> of(Config config, ScanOptions options, PrintStream out, Log log, boolean daemon) {
            List<Channel> channels = new ArrayList<>();
            channels.add(daemon ? new LogSummary(log) : new Stdout(out, options.format(), options.colour()));
            Delivery d = config.delivery();
            if (d.reportDir() != null) channels.add(new ReportFolder(d.reportDir(), d.reportFormats(), d.retentionDays(), log));
            if (d.smtp() != null) channels.add(new Email(d.smtp(), config, log));
            if (d.webhookUrl() != null) channels.add(new Webhook(d.webhookUrl(), d.webhookFormat(), config, log));
            return channels;
        }

        static String render(Report r, Format f, boolean colour) {
            return switch (f) {
                case TEXT -> Reports.text(r, colour);
                case HTML -> Reports.html(r);
                case JSON -> {
                    try {
                        yield JSON.writerWithDefaultPrettyPrinter().writeValueAsString(Reports.json(r)) + "\n";
                    } catch (JsonProcessingException e) {
                        throw new IllegalStateException(e);
                    }
                }
            };
        }

        /** "[UniFi] 2 severe, 3 medium — Default — 2026-12-04" */
        static String subject(Report r) {
            Map<Severity, Long> counts = new java.util.EnumMap<>(Severity.class);
            r.explained().findings().forEach(f -> counts.merge(f.severity(), 1L, Long::sum));
            List<String> parts = new ArrayList<>();
            for (Severity s : List.of(Severity.SEVERE, Severity.MEDIUM)) if (counts.containsKey(s)) parts.add(counts.get(s) + " " + s.word());
            if (parts.isEmpty()) parts.add(counts.containsKey(Severity.LOW) ? counts.get(Severity.LOW) + " low" : "all quiet");
            return "[UniFi] " + String.join(", ", parts) + " — " + r.siteLabel() + " — " + r.to().atZone(r.zone()).toLocalDate();
        }

        /** A few lines for chat: the subject, then the severe and medium titles. */
        static String summary(Report r, int maxChars) {
            StringBuilder b = new StringBuilder(subject(r).substring("[UniFi] ".length()));
            for (Finding f : r.explained().findings()) {
                if (f.severity() == Severity.LOW) continue;
                String line = "\n• " + f.severity().word().toUpperCase(Locale.ROOT) + ": " + f.title();
                if (b.length() + line.length() > maxChars - 40) {
                    b.append("\n… and more (see the full report)");
                    break;
                }
                b.append(line);
            }
            return b.toString();
        }
    }

    static final class Stdout implements Channel {
        private final PrintStream out;
        private final Format format;
        private final boolean colour;

        Stdout(PrintStream out, Format format, boolean colour) {
            this.out = out;
            this.format = format;
            this.colour = colour;
        }

        @Override public String name() { return "stdout"; }

        @Override
        public void deliver(Report report) {
            out.print(Channels.render(report, format, colour));
            out.flush();
            if (out.checkError()) throw new ConnectionException("could not write the report to standard output");
        }
    }

    /** The daemon's own record in its log (docker logs): the subject, then one line per severe or medium finding. */
    static final class LogSummary implements Channel {
        private final Log log;

        LogSummary(Log log) { this.log = log; }

        @Override public String name() { return "log"; }

        @Override
        public void deliver(Report report) {
            log.info("report: " + Channels.subject(report));
            for (Finding f : report.explained().findings())
                if (f.severity() != Severity.LOW) log.info(f.severity().word() + ": " + f.title());
        }
    }

    /** unifi-report-<site>-<UTC time>.{txt,html,json}, written atomically; old files of this tool's naming are pruned. */
    static final class ReportFolder implements Channel {
        static final Pattern OURS = Pattern.compile("unifi-report-[A-Za-z0-9._-]+-\\d{8}T\\d{6}Z\\.(txt|html|json)");
        static final DateTimeFormatter STAMP = DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'").withZone(java.time.ZoneOffset.UTC);

        private final Path dir;
        private final List<Format> formats;
        private final int retentionDays;
        private final Log log;

        ReportFolder(Path dir, List<Format> formats, int retentionDays, Log log) {
            this.dir = dir;
            this.formats = formats;
            this.retentionDays = retentionDays;
            this.log = log;
        }

        @Override public String name() { return "report folder"; }

        @Override
        public void deliver(Report report) {
            String base = "unifi-report-" + report.site().replaceAll("[^A-Za-z0-9._-]", "_") + "-" + STAMP.format(report.to());
            try {
                for (Format f : formats) {
                    String ext = switch (f) { case TEXT -> "txt"; case HTML -> "html"; case JSON -> "json"; };
                    writeAtomically(dir.resolve(base + "." + ext), Channels.render(report, f, false), "rw-r-----");
                }
            } catch (IOException e) {
                throw new ConnectionException("could not write the report into " + dir + " (" + describeIo(e) + "): check UNIFI_REPORT_DIR and its permissions");
            }
            if (retentionDays > 0) prune(Instant.now().minus(Duration.ofDays(retentionDays)));
        }

        /** Deletes only files this tool named, and only when older than the retention. */
        void prune(Instant before) {
            try (var files = Files.list(dir)) {
                for (Path p : files.filter(p -> OURS.matcher(p.getFileName().toString()).matches()).toList()) {
                    if (Files.getLastModifiedTime(p).toInstant().isBefore(before)) {
                        Files.deleteIfExists(p);
                        log.debug("deleted old report " + p);
                    }
                }
            } catch (IOException e) {
                log.warn("could not prune old reports in " + dir + " (" + describeIo(e) + ")");
            }
        }
    }

    /** Multipart text + HTML mail over SMTP (STARTTLS, implicit TLS or plain), with the shared retry policy. */
    static final class Email implements Channel {
        private final Smtp smtp;
        private final Retry retry;
        private final Duration timeout;
        javax.net.ssl.SSLSocketFactory socketFactory; // null: the JVM's trusted CAs

        Email(Smtp smtp, Config config, Log log) {
            this.smtp = smtp;
            this.retry = new Retry(config, log);
            this.timeout = config.connectTimeout();
            log.secret(smtp.password());
        }

        @Override public String name() { return "email"; }

        @Override
        public void deliver(Report report) {
            String where = smtp.host() + ":" + smtp.port();
            try {
                jakarta.mail.internet.MimeMessage message = message(report);
                retry.run("sending the report by mail via " + where, false, () -> {
                    jakarta.mail.Transport.send(message);
                    return Boolean.TRUE;
                }, r -> false, Email::retryable);
            } catch (jakarta.mail.AuthenticationFailedException e) {
                throw new ConnectionException("the mail server " + where + " rejected UNIFI_SMTP_USERNAME/UNIFI_SMTP_PASSWORD");
            } catch (Exception e) {
                throw new ConnectionException("sending the report by mail via " + where + " failed: " + mailProblem(e));
            }
        }

        jakarta.mail.internet.MimeMessage message(Report report) throws jakarta.mail.MessagingException {
            java.util.Properties p = new java.util.Properties();
            if (smtp.tls().equals("implicit")) p.put("mail.smtp.ssl.enable", "true");
            p.put("mail.smtp.host", smtp.host());
            p.put("mail.smtp.port", String.valueOf(smtp.port()));
            p.put("mail.smtp.connectiontimeout", String.valueOf(timeout.toMillis()));
            p.put("mail.smtp.timeout", String.valueOf(timeout.multipliedBy(3).toMillis()));
            p.put("mail.smtp.writetimeout", String.valueOf(timeout.multipliedBy(3).toMillis()));
            p.put("mail.smtp.ssl.checkserveridentity", "true");
            if (smtp.tls().equals("starttls")) {
                p.put("mail.smtp.starttls.enable", "true");
                p.put("mail.smtp.starttls.required", "true");
            }
            if (socketFactory != null) p.put("mail.smtp.ssl.socketFactory", socketFactory);
            jakarta.mail.Authenticator auth = null;
            if (smtp.username() != null) {
                p.put("mail.smtp.auth", "true");
                auth = new jakarta.mail.Authenticator() {
                    @Override protected jakarta.mail.PasswordAuthentication getPasswordAuthentication() {
                        return new jakarta.mail.PasswordAuthentication(smtp.username(), smtp.password());
                    }
                };
            }
            jakarta.mail.Session session = jakarta.mail.Session.getInstance(p, auth);
            var m = new jakarta.mail.internet.MimeMessage(session);
            m.setFrom(new jakarta.mail.internet.InternetAddress(smtp.from()));
            for (String to : smtp.to()) m.addRecipient(jakarta.mail.Message.RecipientType.TO, new jakarta.mail.internet.InternetAddress(to));
            m.setSubject(Channels.subject(report), "UTF-8");
            m.setSentDate(java.util.Date.from(report.to()));
            var text = new jakarta.mail.internet.MimeBodyPart();
            text.setText(Channels.render(report, Format.TEXT, false), "UTF-8", "plain");
            var html = new jakarta.mail.internet.MimeBodyPart();
            html.setText(Channels.render(report, Format.HTML, false), "UTF-8", "html");
            var body = new jakarta.mail.internet.MimeMultipart("alternative");
            body.addBodyPart(text);
            body.addBodyPart(html);
            m.setContent(body);
            m.saveChanges();
            return m;
        }

        /** Connection trouble is retried; a refused login or address is not. */
        private static boolean retryable(Throwable t) {
            if (t instanceof jakarta.mail.AuthenticationFailedException || t instanceof jakarta.mail.SendFailedException) return false;
            for (Throwable c = t; c != null; c = c.getCause()) {
                if (c instanceof SSLException) return false;
                if (c instanceof IOException) return true;
            }
            return false;
        }

        private static String mailProblem(Throwable e) {
            for (Throwable c = e; c != null; c = c.getCause()) {
                if (c instanceof SSLException) return "TLS failed (" + c.getMessage() + "); check UNIFI_SMTP_TLS and the server's certificate";
                if (c instanceof ConnectException) return "connection refused";
                if (c instanceof java.net.SocketTimeoutException) return "timed out";
                if (c instanceof UnknownHostException) return "cannot resolve the host";
            }
            String m = e.getMessage();
            return m == null ? e.getClass().getSimpleName() : m.lines().findFirst().orElse(m);
        }
    }

    /** POSTs the report: the JSON document, or a Slack, Discord or ntfy message. The URL is a secret: never printed. */
    static final class Webhook implements Channel {
        private final String url, style;
        private final Retry retry;
        private final Duration timeout;
        private final HttpClient http;
        private final Log log;

        Webhook(String url, String style, Config config, Log log) {
            this.url = url;
            this.style = style;
            this.retry = new Retry(config, log);
            this.timeout = config.connectTimeout();
            this.log = log;
            log.secret(url);
            this.http = HttpClient.newBuilder().connectTimeout(timeout).followRedirects(HttpClient.Redirect.NORMAL).build();
        }

        @Override public String name() { return "webhook"; }

        @Override
        public void deliver(Report report) {
            HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url)).timeout(timeout.multipliedBy(3))
                    .header("User-Agent", "unifi-scanner/" + VERSION);
            String body;
            switch (style) {
                case "slack" -> body = JSON.createObjectNode().put("text", Channels.summary(report, 3000)).toString();
                case "discord" -> body = JSON.createObjectNode().put("content", Channels.summary(report, 2000)).put("username", NAME).toString();
                case "ntfy" -> {
                    body = Channels.summary(report, 4000);
                    boolean severe = report.explained().findings().stream().anyMatch(f -> f.severity() == Severity.SEVERE);
                    boolean medium = report.explained().findings().stream().anyMatch(f -> f.severity() == Severity.MEDIUM);
                    b.header("Title", Channels.subject(report).replaceAll("[^\\x20-\\x7e]", "-"))
                            .header("Priority", severe ? "5" : medium ? "4" : "3").header("Tags", severe ? "rotating_light" : "information_source");
                }
                default -> body = Reports.json(report).toString();
            }
            b.header("Content-Type", style.equals("ntfy") ? "text/plain; charset=utf-8" : "application/json");
            HttpRequest request = b.POST(HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8)).build();
            Answer a;
            try {
                a = retry.run("delivering the report to the webhook", false, () -> {
                    HttpResponse<byte[]> r = http.send(request, HttpResponse.BodyHandlers.ofByteArray());
                    return new Answer("POST", "(webhook)", r.statusCode(), r.headers(), r.body());
                }, r -> Retry.RETRIED_STATUS.contains(r.status()), f -> f instanceof IOException io && UnifiClient.retryable(io));
            } catch (Exception e) {
                throw new ConnectionException("delivering the report to the webhook (UNIFI_WEBHOOK_URL) failed: "
                        + (e instanceof IOException io ? describeIo(io) : String.valueOf(e.getMessage())));
            }
            if (a.status() / 100 != 2)
                throw new ConnectionException("the webhook (UNIFI_WEBHOOK_URL) answered HTTP " + a.status() + ": " + log.scrub(a.snippet())
                        + (Retry.RETRIED_STATUS.contains(a.status()) ? " after " + retry.retriesText() : ""));
        }
    }

    // =====================================================================================
    // Remember: where the last run stopped, the controller session, one run at a time
    // =====================================================================================

    /** Writes a file atomically: a temp file in the same folder with the given mode, then a rename over the target. */
    static void writeAtomically(Path path, String content, String mode) throws IOException {
        Path dir = path.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, "." + path.getFileName() + ".", ".tmp");
        try {
            try {
                Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString(mode));
            } catch (UnsupportedOperationException ignored) { /* not a POSIX file system */ }
            Files.writeString(tmp, content, StandardCharsets.UTF_8);
            try {
                Files.move(tmp, path, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, path, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /**
     * Per controller URL and site: the newest event time reported, the ids seen at exactly that millisecond (so
     * events sharing it are neither lost nor repeated), the last report time and the snapshot issues last reported.
     */
    record Cursor(Instant time, Set<String> idsAtTime, Instant lastReport, Set<String> reportedIssues) {
        static final Cursor NONE = new Cursor(null, Set.of(), null, Set.of());

        /** Keeps events and alerts newer than the cursor, and those at its instant that were not seen. */
        boolean isNew(Instant t, String id) {
            return time == null || t.isAfter(time) || (t.equals(time) && !idsAtTime.contains(id));
        }

        /** The cursor after a run whose newest event was at {@code newest} (null: none) with those ids. */
        Cursor advance(Instant newest, Set<String> idsAtNewest, Instant reportTime, Set<String> issues) {
            Instant report = reportTime == null ? lastReport : reportTime;
            if (newest == null || (time != null && newest.isBefore(time))) return new Cursor(time, idsAtTime, report, issues);
            Set<String> ids = new java.util.TreeSet<>(idsAtNewest);
            if (newest.equals(time)) ids.addAll(idsAtTime);
            return new Cursor(newest, ids, report, issues);
        }
    }

    static final class StateStore implements AutoCloseable {
        private final Path file;
        private final Log log;
        private final java.nio.channels.FileChannel lockChannel;
        private final ObjectNode cursors;

        private StateStore(Path file, Log log, java.nio.channels.FileChannel lockChannel, ObjectNode cursors) {
            this.file = file;
            this.log = log;
            this.lockChannel = lockChannel;
            this.cursors = cursors;
        }

        /** Takes the lock beside the state file (or fails at once), then reads the state; a corrupt file is set aside. */
        static StateStore open(Path file, Log log) {
            java.nio.channels.FileChannel channel;
            Path lockFile = file.resolveSibling(file.getFileName() + ".lock");
            try {
                Files.createDirectories(file.toAbsolutePath().getParent());
                channel = java.nio.channels.FileChannel.open(lockFile, java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.WRITE);
            } catch (IOException e) {
                throw new ConfigException("cannot use the state folder " + file.toAbsolutePath().getParent() + " (" + describeIo(e) + "): set UNIFI_STATE_FILE to a writable path");
            }
            try {
                if (channel.tryLock() == null) throw new IOException("held");
            } catch (IOException | java.nio.channels.OverlappingFileLockException e) {
                closeQuietly(channel);
                throw new ScannerException(EXIT_LOCKED, "another unifi-scanner run is still in progress (lock " + lockFile
                        + "); this run stops without reporting so nothing is reported twice");
            }
            ObjectNode cursors = JSON.createObjectNode();
            try {
                JsonNode doc = JSON.readTree(Files.readString(file, StandardCharsets.UTF_8));
                if (doc == null || !doc.path("cursors").isObject()) throw new IOException("no cursors");
                cursors = (ObjectNode) doc.path("cursors");
            } catch (NoSuchFileException e) {
                log.debug("no state file yet at " + file + ": first run");
            } catch (IOException e) {
                Path aside = file.resolveSibling(file.getFileName() + ".corrupt-" + Instant.now().toString().replace(':', '-'));
                try {
                    Files.move(file, aside);
                    log.warn("the state file " + file + " was unreadable; moved it to " + aside + " and starting afresh (looking back the initial window)");
                } catch (IOException moveFailed) {
                    closeQuietly(channel);
                    throw new ConfigException("the state file " + file + " is unreadable and cannot be moved aside (" + describeIo(moveFailed) + ")");
                }
            }
            return new StateStore(file, log, channel, cursors);
        }

        Cursor cursor(String key) {
            JsonNode c = cursors.path(key);
            if (!c.isObject()) return Cursor.NONE;
            Set<String> ids = new java.util.TreeSet<>(), issues = new java.util.TreeSet<>();
            c.path("idsAtTime").forEach(n -> ids.add(n.asText()));
            c.path("reportedIssues").forEach(n -> issues.add(n.asText()));
            return new Cursor(c.hasNonNull("time") ? Instant.parse(c.path("time").asText()) : null, ids,
                    c.hasNonNull("lastReport") ? Instant.parse(c.path("lastReport").asText()) : null, issues);
        }

        void put(String key, Cursor c) {
            ObjectNode o = cursors.putObject(key);
            o.put("time", c.time() == null ? null : c.time().toString());
            c.idsAtTime().forEach(o.putArray("idsAtTime")::add);
            o.put("lastReport", c.lastReport() == null ? null : c.lastReport().toString());
            c.reportedIssues().forEach(o.putArray("reportedIssues")::add);
        }

        void save() {
            ObjectNode doc = JSON.createObjectNode().put("version", 1);
            doc.set("cursors", cursors);
            try {
                writeAtomically(file, doc.toPrettyString() + "\n", "rw-------");
            } catch (IOException e) {
                throw new ConfigException("cannot write the state file " + file + " (" + describeIo(e) + "): set UNIFI_STATE_FILE to a writable path");
            }
        }

        @Override
        public void close() { closeQuietly(lockChannel); }
    }

    /**
     * The controller session (cookies and CSRF token, never the password) kept between runs in a 0600 file, so a
     * cron job every 5 minutes logs in a handful of times a day instead of 288.
     */
    static final class SessionCache {
        private final Path file;
        private final Log log;

        SessionCache(Path file, Log log) {
            this.file = file;
            this.log = log;
        }

        Optional<Session.Saved> load(String key) {
            try {
                JsonNode s = JSON.readTree(Files.readString(file, StandardCharsets.UTF_8)).path(key);
                if (!s.isObject()) return Optional.empty();
                Map<String, String> cookies = new LinkedHashMap<>();
                s.path("cookies").properties().forEach(e -> cookies.put(e.getKey(), e.getValue().asText()));
                return Optional.of(new Session.Saved(cookies, s.path("csrf").asText(null)));
            } catch (IOException e) {
                return Optional.empty();
            }
        }

        void save(String key, Session.Saved session) {
            ObjectNode doc = JSON.createObjectNode();
            ObjectNode s = doc.putObject(key);
            session.cookies().forEach(s.putObject("cookies")::put);
            s.put("csrf", session.csrf());
            try {
                writeAtomically(file, doc.toString(), "rw-------");
            } catch (IOException e) {
                log.warn("cannot keep the controller session in " + file + " (" + describeIo(e) + "); the next run logs in again");
            }
        }
    }

    static void closeQuietly(AutoCloseable c) {
        try {
            if (c != null) c.close();
        } catch (Exception ignored) { /* nothing useful to do */ }
    }

    // =====================================================================================
    // Health file: what a container's HEALTHCHECK reads
    // =====================================================================================

    static final class HealthFile {
        enum Status { STARTING, HEALTHY, UNHEALTHY }

        private final Path path;
        private final Log log;

        HealthFile(Path path, Log log) {
            this.path = path;
            this.log = log;
        }

        /** Writes {status, timestamp, details} atomically (temp file + rename), mode 0644. Never throws. */
        void write(Status status, Map<String, String> details) {
            ObjectNode doc = JSON.createObjectNode()
                    .put("status", status.name().toLowerCase(Locale.ROOT))
                    .put("timestamp", Instant.now().truncatedTo(ChronoUnit.MILLIS).toString());
            ObjectNode d = doc.putObject("details");
            details.forEach((k, v) -> d.put(k, log.scrub(v)));
            try {
                writeAtomically(path, doc.toString() + "\n", "rw-r--r--");
            } catch (IOException e) {
                log.warn("cannot write the health file " + path + " (" + describeIo(e) + "); set UNIFI_HEALTH_FILE to a writable path");
            }
        }

        void remove() {
            try {
                Files.deleteIfExists(path);
            } catch (IOException e) {
                log.warn("cannot remove the health file " + path + " (" + describeIo(e) + ")");
            }
        }

        record Verdict(boolean healthy, String reason) {}

        /** Healthy only when the file says so and is younger than 2 × poll interval + 60 s. */
        static Verdict check(Path path, Duration pollInterval, Instant now) {
            Duration limit = pollInterval.multipliedBy(2).plusSeconds(60);
            JsonNode doc;
            try {
                doc = JSON.readTree(Files.readString(path, StandardCharsets.UTF_8));
            } catch (NoSuchFileException e) {
                return new Verdict(false, "no health file at " + path + ": the scanner has not run yet, or stopped");
            } catch (IOException e) {
                return new Verdict(false, "cannot read the health file " + path + " (" + describeIo(e) + ")");
            }
            Instant at;
            try {
                at = Instant.parse(doc.path("timestamp").asText());
            } catch (RuntimeException e) {
                return new Verdict(false, "the health file " + path + " has no valid timestamp");
            }
            String status = doc.path("status").asText("missing");
            Duration age = Duration.between(at, now);
            String ago = Durations.format(age.isNegative() ? Duration.ZERO : age.truncatedTo(ChronoUnit.SECONDS)) + " ago";
            if (!status.equals("healthy")) {
                String error = doc.path("details").path("error").asText("");
                return new Verdict(false, status + " since " + ago + (error.isEmpty() ? "" : ": " + error));
            }
            if (age.compareTo(limit) > 0)
                return new Verdict(false, "stale: last healthy poll " + ago + ", limit " + Durations.format(limit) + " (2 × poll interval + 60s)");
            return new Verdict(true, "healthy, last poll " + ago);
        }
    }

    // =====================================================================================
    // The scan: one poll — connect, collect what is new, explain, report, remember
    // =====================================================================================

    record ScanOptions(Format format, boolean always, Severity failOn, boolean sessionCache, boolean colour) {}

    static final class Scan {
        private final Config config;
        private final ScanOptions options;
        private final Log log;
        private final PrintStream err;
        private final List<Channel> channels;

        Scan(Config config, ScanOptions options, Log log, PrintStream err, List<Channel> channels) {
            this.config = config;
            this.options = options;
            this.log = log;
            this.err = err;
            this.channels = channels;
        }

        int run(UnifiClient client, HealthFile health) {
            try (StateStore state = StateStore.open(config.stateFile(), log)) {
                client.detect();
                SessionCache sessions = options.sessionCache() && !config.usesApiKey() ? new SessionCache(config.sessionFile(), log) : null;
                String sessionKey = client.baseUrl() + "|" + config.username();
                if (sessions != null) sessions.load(sessionKey).ifPresent(client::resume);
                try {
                    return poll(client, state, health);
                } finally {
                    if (sessions != null && client.loggedIn()) sessions.save(sessionKey, client.exportSession());
                    else client.logout();
                }
            }
        }

        int poll(UnifiClient client, StateStore state, HealthFile health) {
            if (client.baseUrl() == null) client.detect();
            client.authenticate();
            List<Site> all = client.sites();
            boolean allSites = "all".equalsIgnoreCase(String.valueOf(config.site()));
            List<Site> sites = allSites ? all : List.of(UnifiClient.selectSite(all, config.site()));
            if (sites.isEmpty()) throw new ConfigException("this account sees no sites on the controller: give it access to one");
            client.useSite(sites.get(0));
            SysInfo info = client.readSysInfo();
            ZoneId zone = zone(info);
            Instant now = Instant.now().truncatedTo(ChronoUnit.MILLIS);
            Collector collector = new Collector(client, log);

            Explainer.Accumulator findings = new Explainer(config.thresholds(), zone).new Accumulator();
            Map<String, Cursor> cursors = new LinkedHashMap<>();
            Map<String, Progress> progress = new LinkedHashMap<>();
            Map<String, Set<String>> missingSources = new LinkedHashMap<>();
            List<Device> devices = new ArrayList<>();
            List<Subsystem> subsystems = new ArrayList<>();
            Map<String, String> sources = new LinkedHashMap<>(), notes = new LinkedHashMap<>();
            int malformed = 0, read = 0;
            Instant from = now;
            for (Site site : sites) {
                Cursor cursor = state.cursor(client.baseUrl() + "|" + site.name());
                Progress seen = new Progress();
                cursors.put(site.name(), cursor);
                progress.put(site.name(), seen);
                Instant since = cursor.time() != null ? cursor.time() : now.minus(Duration.ofHours(config.initialLookbackHours()));
                if (since.isBefore(from)) from = since;
                SiteSnapshot c = collector.collect(site.name(), since, now, new Collector.Sink() {
                    @Override public void event(Event e) {
                        if (cursor.isNew(e.time(), e.id())) {
                            seen.saw(e.time(), e.id());
                            findings.event(e);
                        }
                    }

                    @Override public void ips(IpsAlert a) {
                        if (cursor.isNew(a.time(), a.id())) {
                            seen.saw(a.time(), a.id());
                            findings.ips(a);
                        }
                    }
                });
                read += c.recordsRead();
                // a missing source is said once at INFO, not on every cron run: the report notes it each time
                Set<String> missing = new java.util.TreeSet<>();
                c.sources().forEach((source, status) -> {
                    String id = "source:" + site.name() + ":" + source + ":" + status;
                    if (!status.equals("unavailable")) return;
                    missing.add(id);
                    if (!cursor.reportedIssues().contains(id)) log.info(c.notes().get(source) + " (skipped; said once)");
                });
                missingSources.put(site.name(), missing);
                devices.addAll(c.devices());
                subsystems.addAll(c.health());
                c.sources().forEach((k, v) -> sources.merge(k, v, Scan::worse));
                notes.putAll(c.notes());
                malformed += c.malformed();
            }
            Explained explained = findings.finish(devices, subsystems);

            Set<String> reportedBefore = new java.util.HashSet<>();
            cursors.values().forEach(c -> reportedBefore.addAll(c.reportedIssues()));
            boolean news = explained.findings().stream().anyMatch(f -> !f.snapshot() || !reportedBefore.contains(f.snapshotId()));
            boolean print = news || options.always();
            if (print) {
                Report report = new Report(client.baseUrl(), client.describeKind(), info.model(), info.version(),
                        allSites ? "all" : sites.get(0).name(), allSites ? "all sites" : sites.get(0).display(), from, now, explained, sources, notes, read, malformed, client.requestCount(),
                        client.bytesRead(), zone);
                if (channels.stream().anyMatch(c -> c instanceof Stdout)) banner(config, client).forEach(err::println);
                deliver(report);
            } else {
                log.debug("nothing new since the last run: no report");
            }
            for (Site site : sites) {
                Set<String> issues = new java.util.TreeSet<>(missingSources.get(site.name()));
                explained.findings().stream().filter(f -> f.snapshot() && f.site().equals(site.name())).forEach(f -> issues.add(f.snapshotId()));
                Progress seen = progress.get(site.name());
                state.put(client.baseUrl() + "|" + site.name(), cursors.get(site.name()).advance(seen.newest, seen.ids, print ? now : null, issues));
            }
            state.save();
            Map<String, String> details = new LinkedHashMap<>();
            details.put("controller", client.baseUrl());
            details.put("site", allSites ? "all" : sites.get(0).name());
            details.put("findings", String.valueOf(explained.findings().size()));
            health.write(HealthFile.Status.HEALTHY, details);
            if (print && options.failOn() != null && explained.findings().stream().anyMatch(f -> f.severity().compareTo(options.failOn()) <= 0))
                return EXIT_FINDINGS;
            return EXIT_OK;
        }

        /**
         * Hands the report to every channel. Delivered means every channel succeeded; otherwise the failures (one
         * line each, joined) are the error, and the state stays where it was so the next run sends them again.
         */
        private void deliver(Report report) {
            List<String> failed = new ArrayList<>();
            for (Channel c : channels) {
                try {
                    c.deliver(report);
                    log.debug("report delivered: " + c.name());
                } catch (ScannerException e) {
                    failed.add(e.getMessage());
                }
            }
            if (!failed.isEmpty())
                throw new ConnectionException(String.join("; ", failed) + " — nothing was marked as reported, so the next run delivers it again");
        }

        /** The newest event time of this run and the ids seen at exactly that millisecond. */
        static final class Progress {
            Instant newest;
            final Set<String> ids = new java.util.HashSet<>();

            void saw(Instant t, String id) {
                if (newest == null || t.isAfter(newest)) {
                    newest = t;
                    ids.clear();
                }
                if (t.equals(newest)) ids.add(id);
            }
        }

        private static String worse(String a, String b) {
            List<String> order = List.of("ok", "unavailable", "error");
            return order.indexOf(a) >= order.indexOf(b) ? a : b;
        }

        private static ZoneId zone(SysInfo info) {
            try {
                if (info.timezone() != null && !info.timezone().isBlank()) return ZoneId.of(info.timezone());
            } catch (RuntimeException ignored) { /* fall back to this machine's zone */ }
            return ZoneId.systemDefault();
        }
    }

    /**
     * --daemon: one poll every interval, timed from the start of the previous poll; ticks missed by a long poll are
     * skipped, not bunched. One session for the daemon's life (a 401 logs in again). A failed poll marks the health
     * file unhealthy and waits longer before the next (1, 2, 4, up to 8 intervals); the daemon never exits for it.
     */
    static final class Daemon {
        static final Duration MIN_INTERVAL = Duration.ofMinutes(1);
        static final Duration GRACE = Duration.ofSeconds(5);

        private final Scan scan;
        private final Config config;
        private final Duration interval;
        private final Log log;
        private final CountDownLatch done = new CountDownLatch(1);
        private final Object sleeper = new Object();
        private volatile boolean stopping, polling;
        private volatile Thread thread;

        Daemon(Scan scan, Config config, Duration interval, Log log) {
            this.scan = scan;
            this.config = config;
            this.interval = interval;
            this.log = log;
        }

        int run(UnifiClient client, HealthFile health) {
            thread = Thread.currentThread();
            try (StateStore state = StateStore.open(config.stateFile(), log)) {
                log.info("daemon started: polling every " + Durations.format(interval));
                int failures = 0;
                while (!stopping) {
                    Instant started = Instant.now();
                    polling = true;
                    try {
                        scan.poll(client, state, health);
                        failures = 0;
                    } catch (ScannerException e) {
                        if (stopping) break;
                        failures++;
                        String line = log.scrub(e.getMessage());
                        health.write(HealthFile.Status.UNHEALTHY, Map.of("mode", "daemon", "error", line, "failedPolls", String.valueOf(failures)));
                        log.error("poll failed: " + line);
                    } finally {
                        polling = false;
                        Thread.interrupted(); // an interrupt meant for the poll must not cut the sleep short
                    }
                    Instant next = nextPoll(started, interval, Instant.now(), failures);
                    if (failures > 0) log.info("next poll at " + next.truncatedTo(ChronoUnit.SECONDS));
                    sleepUntil(next);
                }
                log.info("daemon stopped");
                return EXIT_OK;
            } finally {
                done.countDown();
            }
        }

        /** The next tick after {@code now} on the grid started + k × interval; after failures the step grows (×2, up to ×8). */
        static Instant nextPoll(Instant started, Duration interval, Instant now, int failures) {
            Duration step = interval.multipliedBy(failures == 0 ? 1 : Math.min(8, 1L << Math.min(3, failures - 1)));
            Instant next = started.plus(step);
            while (!next.isAfter(now)) next = next.plus(interval);
            return next;
        }

        private void sleepUntil(Instant next) {
            synchronized (sleeper) {
                long ms;
                while (!stopping && (ms = Duration.between(Instant.now(), next).toMillis()) > 0) {
                    try {
                        sleeper.wait(ms);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            }
        }

        /** From the signal handler: wake the sleep, give a poll in flight a few seconds, then abandon it. */
        void stop() {
            stopping = true;
            synchronized (sleeper) { sleeper.notifyAll(); }
            try {
                if (polling && !done.await(GRACE.toMillis(), TimeUnit.MILLISECONDS)) {
                    Thread t = thread;
                    if (t != null) t.interrupt();
                }
                done.await(GRACE.toMillis(), TimeUnit.MILLISECONDS);
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
        }
    }

    // =====================================================================================
    // Banner
    // =====================================================================================

    static List<String> banner(Config c, UnifiClient client) {
        List<String> lines = new ArrayList<>();
        lines.add(NAME + " " + VERSION);
        String hostname = client.sysInfo() == null ? null : client.sysInfo().hostname();
        StringBuilder ctl = new StringBuilder("Controller: " + client.baseUrl() + (hostname == null || hostname.isBlank() ? "" : " (" + hostname + ")")
                + " — " + client.describeKind());
        if (client.sysInfo() != null && client.sysInfo().version() != null) ctl.append(", Network ").append(client.sysInfo().version());
        lines.add(ctl.toString());
        lines.add("Auth: " + (c.usesApiKey() ? "API key" : "password (user '" + c.username() + "')"));
        if (client.site() != null) lines.add("Site: " + client.site().display());
        lines.add("Poll interval: " + Durations.format(c.pollInterval()));
        return lines;
    }

    // =====================================================================================
    // CLI: picocli, exit codes, signals
    // =====================================================================================

    /** What a signal must clean up: the health file and the controller session of the run in flight. */
    static final class ShutdownGuard {
        private volatile boolean finished;
        private volatile UnifiClient client;
        private volatile HealthFile health;
        private volatile Daemon daemon;

        void track(UnifiClient client, HealthFile health) {
            this.client = client;
            this.health = health;
        }

        void track(Daemon daemon) { this.daemon = daemon; }

        void finished() { finished = true; }

        /** Runs on SIGINT/SIGTERM (JVM shutdown hook); the JVM then exits 130/143. */
        void onSignal() {
            if (finished) return;
            Daemon d = daemon;
            if (d != null) d.stop();
            HealthFile h = health;
            if (h != null) h.remove();
            UnifiClient c = client;
            if (c != null) c.logout();
        }
    }

    @Command(name = "unifi-scanner", mixinStandardHelpOptions = true, versionProvider = Cli.Version.class, sortOptions = false,
            usageHelpAutoWidth = true,
            description = {"Logs into a UniFi controller and tells you, in plain English, what happened and what to do.", ""},
            footerHeading = "%nConfiguration:%n",
            footer = {"Each option can also be set by its environment variable (named above) or in a",
                    "YAML file (--config or CONFIG_PATH) whose keys are the option names.",
                    "Highest first: options, environment, file, defaults.",
                    "UNIFI_X_FILE=/path reads UNIFI_X from a file (Docker secrets).",
                    "Durations: 90 (seconds), 90s, 5m, 0.2s."},
            exitCodeListHeading = "%nExit codes:%n",
            exitCodeList = {"0:success (also: nothing new, so no report)", "1:configuration problem (fix the settings)",
                    "2:connection problem (controller unreachable, TLS, bad answers, report not written)",
                    "3:authentication problem (credentials, MFA, API key, login rate limit)", "4:--fail-on: a finding at or above that severity",
                    "5:another run is still in progress (lock held)", "130:interrupted (SIGINT)", "143:terminated (SIGTERM)"})
    static final class Cli implements java.util.concurrent.Callable<Integer> {
        @Spec CommandSpec spec;

        @Option(names = "--demo", description = "Scan the built-in demo controller (no setup needed) and print its report.")
        boolean demo;

        @Option(names = "--daemon", description = "Keep running: poll every UNIFI_POLL_INTERVAL (at least 1m) and deliver to the configured channels.")
        boolean daemon;

        @Option(names = "--test", description = "Check the configuration and the connection (detect, log in, pick the site, read sysinfo, log out), then exit.")
        boolean test;

        @Option(names = "--format", paramLabel = "FORMAT", description = "Report format: text (default), json or html.")
        String format = "text";

        @Option(names = "--always", description = "Print a report even when nothing new happened (\"all quiet\").")
        boolean always;

        @Option(names = "--fail-on", paramLabel = "SEVERITY", description = "Exit 4 when a reported finding is at or above this severity: severe, medium or low.")
        String failOn;

        @Option(names = "--no-session-cache", description = "Log in on every run instead of reusing the saved controller session.")
        boolean noSessionCache;

        @Option(names = "--health-check", description = "Exit 0 if the health file says healthy and is fresh, else 1. No network.")
        boolean healthCheck;

        @Option(names = {"-c", "--config"}, paramLabel = "FILE", description = "YAML configuration file. Env: CONFIG_PATH")
        Path configFile;

        @Option(names = "--generate-completion", description = "Print a bash/zsh completion script: source <(unifi-scanner --generate-completion)")
        boolean generateCompletion;

        private final Map<String, String> env;
        private final PrintStream out, err;
        private final ShutdownGuard guard;
        private final Log log;

        Cli(Map<String, String> env, PrintStream out, PrintStream err, ShutdownGuard guard) {
            this.env = env;
            this.out = out;
            this.err = err;
            this.guard = guard;
            this.log = new Log(err);
        }

        static final class Version implements CommandLine.IVersionProvider {
            @Override public String[] getVersion() { return new String[]{NAME + " " + VERSION}; }
        }

        /** Parses, runs and maps every outcome to an exit code. Testable: no System.exit, no global state. */
        static int run(String[] args, Map<String, String> env, PrintStream out, PrintStream err, ShutdownGuard guard) {
            Cli cli = new Cli(env, out, err, guard);
            CommandLine cmd = new CommandLine(cli);
            for (Setting s : SETTINGS) {
                String help = (s.help() + " Env: " + s.env() + (s.defaultValue() == null || s.secret() ? "" : ". Default: " + s.defaultValue())).replace("%", "%%");
                cmd.getCommandSpec().addOption(OptionSpec.builder("--" + s.key()).paramLabel(s.label()).type(String.class)
                        .description(help).build());
            }
            cmd.setOut(new java.io.PrintWriter(out, true));
            cmd.setErr(new java.io.PrintWriter(err, true));
            cmd.getCommandSpec().exitCodeOnInvalidInput(EXIT_CONFIG);
            cmd.setParameterExceptionHandler((ex, a) -> {
                err.println("unifi-scanner: " + usageProblem(ex) + " (see --help)");
                return EXIT_CONFIG;
            });
            cmd.setExecutionExceptionHandler((ex, c, parsed) -> {
                cli.log.error("unexpected failure: " + ex); // a bug, not a user mistake: name it, still no secrets
                return EXIT_CONNECTION;
            });
            try {
                return cmd.execute(args);
            } catch (OutOfMemoryError e) {
                err.println("unifi-scanner: ran out of memory; give Java more with JAVA_TOOL_OPTIONS=-Xmx1g (or lower UNIFI_INITIAL_LOOKBACK_HOURS)");
                return EXIT_CONNECTION;
            }
        }

        /** picocli's message, minus any value that might be a secret ("--pasword=hunter2"). */
        static String usageProblem(CommandLine.ParameterException ex) {
            if (ex instanceof CommandLine.UnmatchedArgumentException u) {
                List<String> names = u.getUnmatched().stream().filter(a -> a.startsWith("-")).map(a -> a.split("=", 2)[0]).toList();
                return names.isEmpty() ? "unexpected argument: this tool takes options only" : "unknown option " + String.join(", ", names);
            }
            if (ex instanceof CommandLine.MissingParameterException m && m.getMissing() != null
                    && !m.getMissing().isEmpty() && m.getMissing().get(0) instanceof OptionSpec o)
                return "option " + o.longestName() + " needs a value";
            if (ex.getArgSpec() instanceof OptionSpec o) return "bad value for option " + o.longestName();
            return "bad arguments";
        }

        @Override
        public Integer call() {
            if (generateCompletion) {
                out.print(picocli.AutoComplete.bash("unifi-scanner", spec.commandLine()));
                return EXIT_OK;
            }
            if (healthCheck) return healthCheck();
            ScanOptions options;
            try {
                options = scanOptions();
            } catch (ConfigException e) {
                err.println("unifi-scanner: " + e.getMessage());
                return EXIT_CONFIG;
            }
            if (demo) return demo(options);
            Config config;
            try {
                config = ConfigLoader.load(cliValues(), configFile, env);
            } catch (ScannerException e) {
                err.println("unifi-scanner: " + log.scrub(e.getMessage()));
                return e.exitCode;
            }
            log.configure(config.logLevel(), config.logJson());
            log.debug("configuration: " + config);
            if (test) return connectionCheck(config);
            return daemon ? daemon(config, options) : scan(config, options, new UnifiClient(config, log));
        }

        private ScanOptions scanOptions() {
            Format f = switch (format.toLowerCase(Locale.ROOT)) {
                case "text" -> Format.TEXT;
                case "json" -> Format.JSON;
                case "html" -> Format.HTML;
                default -> throw new ConfigException("--format must be text, json or html, not '" + format + "'");
            };
            Severity fail = null;
            if (failOn != null) {
                fail = java.util.Arrays.stream(Severity.values()).filter(v -> v.word().equalsIgnoreCase(failOn.trim())).findFirst()
                        .orElseThrow(() -> new ConfigException("--fail-on must be severe, medium or low, not '" + failOn + "'"));
            }
            boolean colour = f == Format.TEXT && System.console() != null && env.get("NO_COLOR") == null && out == System.out;
            return new ScanOptions(f, always, fail, !noSessionCache, colour);
        }

        /** One poll: the default mode. */
        private int scan(Config config, ScanOptions options, UnifiClient client) {
            return oneShot("scan", config, client, health ->
                    new Scan(config, options, log, err, Channels.of(config, options, out, log, false)).run(client, health));
        }

        /**
         * A run that ends: the health file says starting, then what the run says (healthy), or unhealthy with the
         * failure's one line, which also goes to stderr as the run's exit message.
         */
        private int oneShot(String mode, Config config, UnifiClient client, java.util.function.ToIntFunction<HealthFile> run) {
            HealthFile health = new HealthFile(config.healthFile(), log);
            if (guard != null) guard.track(client, health);
            health.write(HealthFile.Status.STARTING, Map.of("mode", mode));
            try {
                return run.applyAsInt(health);
            } catch (ScannerException e) {
                String line = log.scrub(e.getMessage());
                if (e.exitCode != EXIT_LOCKED) health.write(HealthFile.Status.UNHEALTHY, Map.of("mode", mode, "error", line));
                err.println("unifi-scanner: " + line);
                return e.exitCode;
            }
        }

        /** --daemon: polls until SIGTERM/SIGINT; the signal handler stops it, logs out and removes the health file. */
        private int daemon(Config config, ScanOptions options) {
            if (config.pollInterval().compareTo(Daemon.MIN_INTERVAL) < 0) {
                err.println("unifi-scanner: poll-interval " + Durations.format(config.pollInterval())
                        + " is too short for --daemon: at least 1m (consoles lock out accounts that log in too often)");
                return EXIT_CONFIG;
            }
            UnifiClient client = new UnifiClient(config, log);
            HealthFile health = new HealthFile(config.healthFile(), log);
            List<Channel> channels = Channels.of(config, options, out, log, true);
            Daemon d = new Daemon(new Scan(config, options, log, err, channels), config, config.pollInterval(), log);
            if (guard != null) {
                guard.track(client, health);
                guard.track(d);
            }
            health.write(HealthFile.Status.STARTING, Map.of("mode", "daemon"));
            try {
                return d.run(client, health);
            } catch (ScannerException e) { // only the lock: every poll failure is survived
                err.println("unifi-scanner: " + log.scrub(e.getMessage()));
                return e.exitCode;
            }
        }

        /** --demo: the real scan, over HTTP, against the emulated controller; its own state, never the user's. */
        private int demo(ScanOptions options) {
            Path dir = null;
            try (DemoController controller = DemoController.start(DemoController.realisticDay(Instant.now()), false)) {
                dir = Files.createTempDirectory("unifi-scanner-demo");
                Map<String, String> values = new LinkedHashMap<>();
                values.put("host", controller.url());
                values.put("username", DemoController.USER);
                values.put("password", DemoController.PASSWORD);
                values.put("state-file", dir.resolve("state.json").toString());
                values.put("health-file", dir.resolve("health").toString());
                values.put("log-level", Optional.ofNullable(blankToNull(env.get("UNIFI_LOG_LEVEL"))).orElse("warn"));
                Config config = ConfigLoader.load(values, null, Map.of());
                log.configure(config.logLevel(), false);
                err.println("Demo: scanning an emulated UniFi OS console at " + controller.url() + " (a day at a small office)");
                return scan(config, new ScanOptions(options.format(), true, options.failOn(), false, options.colour()), new UnifiClient(config, log));
            } catch (IOException e) {
                err.println("unifi-scanner: cannot create a folder for the demo (" + describeIo(e) + ")");
                return EXIT_CONFIG;
            } catch (ScannerException e) {
                err.println("unifi-scanner: " + e.getMessage());
                return e.exitCode;
            } finally {
                if (dir != null) deleteTree(dir);
            }
        }

        private Map<String, String> cliValues() {
            Map<String, String> values = new LinkedHashMap<>();
            CommandLine.ParseResult parsed = spec.commandLine().getParseResult();
            for (Setting s : SETTINGS) {
                if (parsed.hasMatchedOption("--" + s.key())) values.put(s.key(), parsed.matchedOptionValue("--" + s.key(), ""));
            }
            return values;
        }

        /** --test: connect, log in, pick the site, read sysinfo, log out. */
        private int connectionCheck(Config config) {
            UnifiClient client = new UnifiClient(config, log);
            return oneShot("test", config, client, health -> {
                try {
                    client.connect();
                    banner(config, client).forEach(out::println);
                    client.certificateFingerprint().ifPresent(fp -> out.println("Certificate: " + fp));
                    out.println("Configuration and connection: OK");
                    health.write(HealthFile.Status.HEALTHY, Map.of("mode", "test", "controller", client.baseUrl(), "site", client.site().name()));
                    return EXIT_OK;
                } finally {
                    client.logout();
                }
            });
        }

        private int healthCheck() {
            Path file;
            Duration poll;
            try {
                file = Path.of(Optional.ofNullable(ConfigLoader.fromEnv(env, "UNIFI_HEALTH_FILE")).orElse(setting("health-file").defaultValue()));
                poll = Durations.parse(Optional.ofNullable(ConfigLoader.fromEnv(env, "UNIFI_POLL_INTERVAL")).orElse(setting("poll-interval").defaultValue()));
            } catch (IllegalArgumentException e) {
                err.println("unifi-scanner: UNIFI_POLL_INTERVAL is not a duration: use e.g. 90, 90s, 5m");
                return EXIT_CONFIG;
            } catch (ScannerException e) {
                err.println("unifi-scanner: " + e.getMessage());
                return EXIT_CONFIG;
            }
            HealthFile.Verdict v = HealthFile.check(file, poll, Instant.now());
            (v.healthy() ? out : err).println(v.reason());
            return v.healthy() ? EXIT_OK : 1;
        }
    }

    private static String blankToNull(String s) { return s == null || s.isBlank() ? null : s; }

    static void deleteTree(Path dir) {
        try (var files = Files.walk(dir)) {
            files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) { /* a temp folder: the OS cleans up what we could not */ }
    }

    // =====================================================================================
    // Demo controller: an emulated UniFi OS console in this process, for --demo, the benchmark and tests
    // =====================================================================================

    /**
     * Speaks the controller's protocol over real HTTP on 127.0.0.1: detection answer, login with TOKEN cookie and CSRF
     * token, sites, sysinfo, v1 events (paginated, newest first) or — as Network 10 — only the v2 system log, alarms,
     * IPS, devices and health. Events are a list indexed newest first; a synthetic list makes them on demand, so
     * 100 000 events cost no memory.
     */
    static final class DemoController implements AutoCloseable {
        static final String USER = "demo", PASSWORD = "demo-password";

        record Dataset(List<JsonNode> events, List<JsonNode> ips, List<JsonNode> devices, List<JsonNode> health, List<JsonNode> alarms) {}

        private final com.sun.net.httpserver.HttpServer server;
        private final Dataset data;
        private final boolean network10;
        private final Set<String> tokens = ConcurrentHashMap.newKeySet();
        private final java.util.concurrent.atomic.AtomicInteger logins = new java.util.concurrent.atomic.AtomicInteger();
        final List<String> requestLog = java.util.Collections.synchronizedList(new ArrayList<>());
        private volatile String csrf = "";
        /** Site name → description. */
        final Map<String, String> sites = new ConcurrentHashMap<>(Map.of("default", "Default"));

        private DemoController(Dataset data, boolean network10) throws IOException {
            this.data = data;
            this.network10 = network10;
            server = com.sun.net.httpserver.HttpServer.create(new java.net.InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), 0), 0);
            server.createContext("/", this::handle);
            server.setExecutor(java.util.concurrent.Executors.newFixedThreadPool(4, r -> {
                Thread t = new Thread(r, "demo-controller");
                t.setDaemon(true);
                return t;
            }));
            server.start();
        }

        static DemoController start(Dataset data, boolean network10) {
            try {
                return new DemoController(data, network10);
            } catch (IOException e) {
                throw new ConnectionException("cannot start the demo controller on 127.0.0.1: " + describeIo(e));
            }
        }

        String url() { return "http://127.0.0.1:" + server.getAddress().getPort(); }

        int logins() { return logins.get(); }

        /** Forgets every session, as a console does every couple of hours. */
        void expireSessions() { tokens.clear(); }

        @Override
        public void close() { server.stop(0); }

        private void handle(com.sun.net.httpserver.HttpExchange ex) throws IOException {
            try (ex) {
                String method = ex.getRequestMethod();
                String path = ex.getRequestURI().getPath();
                String body = new String(ex.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
                if (requestLog.size() < 10_000) requestLog.add(method + " " + ex.getRequestURI() + (body.isEmpty() ? "" : " " + body));
                if (method.equals("GET") && path.equals("/")) { send(ex, 200, "text/html", "<!DOCTYPE html><html><head><title>UniFi OS</title></head></html>"); return; }
                if (method.equals("POST") && path.equals("/api/auth/login")) { login(ex, body); return; }
                String cookie = Optional.ofNullable(ex.getRequestHeaders().getFirst("Cookie")).orElse("");
                boolean authenticated = java.util.Arrays.stream(cookie.split(";\\s*")).anyMatch(c -> c.startsWith("TOKEN=") && tokens.contains(c.substring(6)));
                if (!authenticated) { send(ex, 401, "text/html", ""); return; }
                if (!method.equals("GET") && !csrf.equals(ex.getRequestHeaders().getFirst("X-CSRF-Token"))) {
                    send(ex, 403, "application/json", "{\"message\":\"Invalid CSRF Token\"}");
                    return;
                }
                JsonNode req = body.isEmpty() ? JSON.createObjectNode() : JSON.readTree(body);
                Matcher sitePath = Pattern.compile("/proxy/network/(?:api/s|v2/api/site)/([^/]+)/(.*)").matcher(path);
                if (sitePath.matches()) {
                    if (!sites.containsKey(sitePath.group(1))) {
                        send(ex, 401, "application/json", "{\"meta\":{\"rc\":\"error\",\"msg\":\"api.err.NoSiteContext\"},\"data\":[]}");
                        return;
                    }
                    path = path.replace("/" + sitePath.group(1) + "/", "/default/"); // every site serves the same day
                }
                switch (method + " " + path) {
                    case "POST /api/auth/logout" -> send(ex, 200, "application/json", "{}");
                    case "GET /proxy/network/api/self/sites" -> envelope(ex, sites.entrySet().stream().map(e -> (JsonNode) JSON.createObjectNode()
                            .put("_id", "5e231c10931eb902acf2" + Integer.toHexString(e.getKey().hashCode() & 0xfff)).put("name", e.getKey())
                            .put("desc", e.getValue()).put("role", "admin")).toList(), -1);
                    case "GET /proxy/network/api/s/default/stat/sysinfo" -> envelope(ex, List.of(JSON.createObjectNode().put("version", network10 ? "10.0.160" : "9.0.114")
                            .put("build", "atag_9.0.114").put("hostname", "Dream-Machine-Pro").put("name", "Dream Machine Pro")
                            .put("ubnt_device_type", "UDMPRO").put("timezone", "UTC").put("udm_version", "4.1.13")), -1);
                    case "POST /proxy/network/api/s/default/stat/event" -> {
                        if (network10) { send(ex, 404, "application/json", "{\"meta\":{\"rc\":\"error\",\"msg\":\"api.err.NotFound\"},\"data\":[]}"); return; }
                        long since = System.currentTimeMillis() - req.path("within").asLong(24) * 3_600_000L;
                        int total = countNewerThan(data.events(), since - 1);
                        int start = Math.min(req.path("_start").asInt(0), total), limit = Math.min(req.path("_limit").asInt(3000), 3000);
                        envelope(ex, data.events().subList(start, Math.min(total, start + limit)), total);
                    }
                    case "POST /proxy/network/v2/api/site/default/system-log/all" -> systemLog(ex, req);
                    case "GET /proxy/network/api/s/default/list/alarm" -> {
                        if (network10) send(ex, 400, "application/json", "{\"meta\":{\"rc\":\"error\",\"msg\":\"api.err.InvalidObject\"},\"data\":[]}");
                        else envelope(ex, data.alarms(), -1);
                    }
                    case "POST /proxy/network/api/s/default/stat/ips/event" -> {
                        if (network10) { send(ex, 404, "application/json", "{\"meta\":{\"rc\":\"error\",\"msg\":\"api.err.NotFound\"},\"data\":[]}"); return; }
                        long start = req.path("start").asLong(0), end = req.path("end").asLong(Long.MAX_VALUE);
                        envelope(ex, data.ips().stream().filter(r -> r.path("time").asLong() >= start && r.path("time").asLong() <= end).toList(), -1);
                    }
                    case "GET /proxy/network/api/s/default/stat/device" -> envelope(ex, data.devices(), -1);
                    case "GET /proxy/network/api/s/default/stat/health" -> envelope(ex, data.health(), -1);
                    default -> send(ex, 404, "application/json", "{\"meta\":{\"rc\":\"error\",\"msg\":\"api.err.NotFound\"},\"data\":[]}");
                }
            } catch (RuntimeException e) {
                send(ex, 500, "text/plain", "demo controller error: " + e);
            }
        }

        private void login(com.sun.net.httpserver.HttpExchange ex, String body) throws IOException {
            JsonNode creds = JSON.readTree(body);
            if (!USER.equals(creds.path("username").asText()) || !PASSWORD.equals(creds.path("password").asText())) {
                send(ex, 401, "application/json", "{\"code\":\"AUTHENTICATION_FAILED_INVALID_CREDENTIALS\",\"message\":\"Invalid username or password\"}");
                return;
            }
            String token = "demo-" + java.util.UUID.randomUUID();
            tokens.add(token);
            csrf = java.util.UUID.randomUUID().toString();
            logins.incrementAndGet();
            ex.getResponseHeaders().add("Set-Cookie", "TOKEN=" + token + "; path=/; samesite=none; secure; httponly");
            ex.getResponseHeaders().add("X-CSRF-Token", csrf);
            send(ex, 200, "application/json", JSON.createObjectNode().put("unique_id", "demo-user").put("username", USER)
                    .put("status", "ACTIVE").put("local_account_exist", true).toString());
        }

        /** The v2 system log: valid categories only (else 400), a time window, pages of at most 1000. */
        private void systemLog(com.sun.net.httpserver.HttpExchange ex, JsonNode req) throws IOException {
            for (JsonNode c : req.path("categories")) {
                if (!Collector.V2_CATEGORIES.contains(c.asText())) {
                    send(ex, 400, "application/json", "{\"errorCode\":400,\"message\":\"Invalid category " + c.asText() + "\"}");
                    return;
                }
            }
            long from = req.path("timestampFrom").asLong(0), to = req.path("timestampTo").asLong(Long.MAX_VALUE);
            int size = Math.min(Math.max(1, req.path("pageSize").asInt(100)), 1000), page = req.path("pageNumber").asInt(0);
            int newerThanTo = countNewerThan(data.events(), to), total = countNewerThan(data.events(), from - 1) - newerThanTo;
            List<JsonNode> slice = data.events().subList(Math.min(newerThanTo + page * size, newerThanTo + total), Math.min(newerThanTo + total, newerThanTo + (page + 1) * size));
            ObjectNode answer = JSON.createObjectNode();
            var arr = answer.putArray("data");
            slice.forEach(r -> arr.add(toSystemLog(r)));
            answer.put("page_number", page).put("total_element_count", total).put("total_page_count", (total + size - 1) / size);
            send(ex, 200, "application/json", answer.toString());
        }

        /** A v1 event record in the shape of a v2 system-log entry. */
        static JsonNode toSystemLog(JsonNode r) {
            String key = r.path("key").asText();
            ObjectNode o = JSON.createObjectNode().put("id", r.path("_id").asText()).put("key", key).put("event", key)
                    .put("timestamp", r.path("time").asLong()).put("status", "ACTIVE").put("type", "EVENT");
            String category = key.startsWith("EVT_W") || key.startsWith("EVT_L") ? "CLIENT_DEVICES" : key.startsWith("EVT_AD") || key.startsWith("EVT_IPS") ? "SECURITY"
                    : key.contains("WAN") ? "INTERNET_AND_WAN" : "UNIFI_DEVICES";
            o.put("category", category).put("severity", key.contains("Lost_Contact") || key.contains("Rogue") ? "HIGH" : "LOW");
            ObjectNode params = o.putObject("parameters");
            String msg = r.path("msg").asText("");
            for (String p : Collector.DEVICE_PREFIXES) {
                if (r.path(p).isTextual()) {
                    params.putObject("DEVICE").put("id", r.path(p).asText()).put("mac", r.path(p).asText()).put("name", r.path(p + "_name").asText(""));
                    msg = msg.replace(r.path(p + "_name").asText("\u0000"), "{DEVICE}");
                    break;
                }
            }
            for (String f : List.of("ip", "iface", "state", "admin", "essid", "radar_channel")) if (r.has(f)) params.putObject(f.toUpperCase(Locale.ROOT)).put("name", r.path(f).asText());
            if (r.has("hostname") || r.has("user")) params.putObject("CLIENT").put("id", r.path("user").asText("")).put("name", r.path("hostname").asText(r.path("user").asText("")));
            return o.put("message_raw", msg).put("title_raw", key.replace("EVT_", "").replace('_', ' '));
        }

        /** How many of the newest-first events are newer than {@code ms} (binary search). */
        private static int countNewerThan(List<JsonNode> events, long ms) {
            int lo = 0, hi = events.size();
            while (lo < hi) {
                int mid = (lo + hi) >>> 1;
                if (events.get(mid).path("time").asLong() > ms) lo = mid + 1;
                else hi = mid;
            }
            return lo;
        }

        private static void envelope(com.sun.net.httpserver.HttpExchange ex, List<JsonNode> data, int count) throws IOException {
            ObjectNode answer = JSON.createObjectNode();
            ObjectNode meta = answer.putObject("meta").put("rc", "ok");
            if (count >= 0) meta.put("count", count);
            var arr = answer.putArray("data");
            data.forEach(arr::add);
            send(ex, 200, "application/json", answer.toString());
        }

        private static void send(com.sun.net.httpserver.HttpExchange ex, int status, String type, String body) throws IOException {
            byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
            ex.getResponseHeaders().set("Content-Type", type);
            ex.sendResponseHeaders(status, bytes.length == 0 ? -1 : bytes.length);
            if (bytes.length > 0) ex.getResponseBody().write(bytes);
        }

        // ---- data: a realistic day, and synthetic volume for the benchmark ---------------

        static final String GW = "74:ac:b9:14:00:01", GARAGE = "74:ac:b9:14:00:11", LIVING = "74:ac:b9:14:00:12",
                RACK = "74:ac:b9:14:00:21", OFFICE = "74:ac:b9:14:00:22";

        /** A day at a small office: what the README's demo shows. Times are relative to {@code now}. */
        static Dataset realisticDay(Instant now) {
            List<ObjectNode> ev = new ArrayList<>();
            int[] id = {0};
            java.util.function.BiFunction<Duration, String, ObjectNode> at = (ago, key) -> {
                ObjectNode o = JSON.createObjectNode().put("_id", String.format("65a1f3c2e4b0%012x", ++id[0])).put("key", key)
                        .put("site_id", "5e231c10931eb902acf25112").put("time", now.minus(ago).toEpochMilli())
                        .put("datetime", now.minus(ago).truncatedTo(ChronoUnit.SECONDS).toString());
                ev.add(o);
                return o;
            };
            // a flapping AP: 14 losses of contact over three and a half hours, each followed by a reconnect
            for (int i = 0; i < 14; i++) {
                Duration ago = Duration.ofHours(14).minusMinutes(i * 15L);
                at.apply(ago, "EVT_AP_Lost_Contact").put("ap", GARAGE).put("ap_name", "Garage AP").put("subsystem", "wlan")
                        .put("msg", "AP[" + GARAGE + "] was disconnected");
                at.apply(ago.minusMinutes(3), "EVT_AP_Connected").put("ap", GARAGE).put("ap_name", "Garage AP").put("subsystem", "wlan")
                        .put("msg", "AP[" + GARAGE + "] was connected");
            }
            // a WAN outage of 14 minutes
            at.apply(Duration.ofHours(12).plusMinutes(48), "EVT_GW_WANTransition").put("gw", GW).put("gw_name", "Dream Machine Pro").put("iface", "eth8")
                    .put("state", "inactive").put("subsystem", "wan").put("msg", "Gateway[" + GW + "] WAN iface eth8 transition to state inactive");
            at.apply(Duration.ofHours(12).plusMinutes(34), "EVT_GW_WANTransition").put("gw", GW).put("gw_name", "Dream Machine Pro").put("iface", "eth8")
                    .put("state", "active").put("subsystem", "wan").put("msg", "Gateway[" + GW + "] WAN iface eth8 transition to state active");
            // a rogue DHCP server on the rack switch
            at.apply(Duration.ofHours(6).plusMinutes(20), "EVT_SW_DetectRogueDHCP").put("sw", RACK).put("sw_name", "Rack Switch").put("ip", "192.168.1.250")
                    .put("mac", "c0:56:27:aa:bb:cc").put("port", 7).put("vlan", 1).put("subsystem", "lan")
                    .put("msg", "Switch[" + RACK + "] detected rogue DHCP server 192.168.1.250 (c0:56:27:aa:bb:cc) on port 7, VLAN 1");
            // a brute-force attempt on the admin login
            for (int i = 0; i < 7; i++) {
                at.apply(Duration.ofHours(15).minusMinutes(i), "EVT_AD_LoginFailed").put("admin", i % 2 == 0 ? "admin" : "root").put("ip", "203.0.113.45")
                        .put("subsystem", "lan").put("msg", "Admin login attempt failed from 203.0.113.45");
            }
            at.apply(Duration.ofHours(3), "EVT_AD_Login").put("admin", "alex").put("ip", "192.168.1.20").put("subsystem", "lan")
                    .put("msg", "Admin[alex] log in from 192.168.1.20");
            // the overheating switch and the office switch that went away
            at.apply(Duration.ofHours(2).plusMinutes(5), "EVT_SW_Overheat").put("sw", RACK).put("sw_name", "Rack Switch").put("subsystem", "lan")
                    .put("msg", "Switch[" + RACK + "] is overheating");
            at.apply(Duration.ofMinutes(95), "EVT_SW_Lost_Contact").put("sw", OFFICE).put("sw_name", "Office Switch").put("subsystem", "lan")
                    .put("msg", "Switch[" + OFFICE + "] was disconnected");
            at.apply(Duration.ofHours(9), "EVT_AP_RadarDetected").put("ap", LIVING).put("ap_name", "Living Room AP").put("radar_channel", "52")
                    .put("freq", "5260").put("subsystem", "wlan").put("msg", "AP[" + LIVING + "] radar detected on channel 52");
            at.apply(Duration.ofHours(20), "EVT_AP_Adopted").put("ap", LIVING).put("ap_name", "Living Room AP").put("subsystem", "wlan")
                    .put("msg", "AP[" + LIVING + "] was adopted");
            // everyday client noise
            String[] clients = {"alex-iphone", "sam-laptop", "printer-2f", "tv-lounge", "kitchen-tablet", "meeting-room-pc"};
            for (int i = 0; i < 240; i++) {
                String c = clients[i % clients.length];
                String mac = String.format("3c:22:fb:%02x:%02x:%02x", i % 6, 0x10, 0x20 + i % 6);
                String ap = i % 3 == 0 ? GARAGE : LIVING;
                String apName = ap.equals(GARAGE) ? "Garage AP" : "Living Room AP";
                String key = i % 7 == 0 ? "EVT_WU_Roam" : i % 2 == 0 ? "EVT_WU_Connected" : "EVT_WU_Disconnected";
                at.apply(Duration.ofMinutes(5L * i + 2), key).put("user", mac).put("hostname", c).put("ssid", "Office").put("ap", ap).put("ap_name", apName)
                        .put("subsystem", "wlan").put("msg", "User[" + mac + "] " + (key.endsWith("Connected") ? "has connected to" : key.endsWith("Roam") ? "roamed to" : "disconnected from") + " AP[" + ap + "]");
            }
            ev.sort(java.util.Comparator.comparingLong((ObjectNode o) -> o.path("time").asLong()).reversed());

            List<JsonNode> ips = new ArrayList<>();
            ObjectNode malware = JSON.createObjectNode().put("_id", "65a1f3c2e4b0ffff00000001").put("timestamp", now.minus(Duration.ofHours(5)).getEpochSecond())
                    .put("time", now.minus(Duration.ofHours(5)).toEpochMilli()).put("event_type", "alert").put("src_ip", "192.168.1.57").put("src_port", 50447)
                    .put("dest_ip", "198.51.100.23").put("dest_port", 80).put("proto", "TCP").put("inner_alert_action", "allowed")
                    .put("inner_alert_signature_id", 2003337).put("inner_alert_signature", "ET MALWARE Suspicious User Agent (Autoupdate)")
                    .put("inner_alert_category", "A Network Trojan was Detected").put("inner_alert_severity", 1).put("key", "EVT_IPS_IpsAlert")
                    .put("subsystem", "www").put("srcipCountry", false).put("dstipCountry", "NL");
            malware.putArray("srcipGeo");
            malware.putArray("catname").add("emerging-malware");
            ips.add(malware);
            for (int i = 0; i < 3; i++) {
                ObjectNode drop = JSON.createObjectNode().put("_id", "65a1f3c2e4b0ffff0000001" + i).put("timestamp", now.minus(Duration.ofHours(8 + i)).getEpochSecond())
                        .put("time", now.minus(Duration.ofHours(8 + i)).toEpochMilli()).put("src_ip", "196.196.244.84").put("src_port", 51413)
                        .put("dest_ip", "192.168.1.2").put("dest_port", 36881).put("proto", "UDP").put("inner_alert_action", "blocked")
                        .put("inner_alert_signature_id", 2400022).put("inner_alert_signature", "ET DROP Spamhaus DROP Listed Traffic Inbound group 23")
                        .put("inner_alert_category", "Misc Attack").put("inner_alert_severity", 2).put("catname", "spamhaus").put("srcipCountry", "SE")
                        .put("key", "EVT_IPS_IpsAlert").put("dstipGeo", false);
                ips.add(drop);
            }

            List<JsonNode> devices = List.of(
                    device(GW, "Dream Machine Pro", "UDMPRO", "udm", 1, 41 * 86_400L, "4.1.13", false, null, 23, 61, 52.0, null, null),
                    device(GARAGE, "Garage AP", "U6-Lite", "uap", 1, 2_400L, "6.6.77", false, null, 8, 41, null, null, null),
                    device(LIVING, "Living Room AP", "U6-Pro", "uap", 1, 212 * 86_400L, "6.5.62", true, "6.6.77", 12, 48, null, null, null),
                    device(RACK, "Rack Switch", "US24P250", "usw", 1, 96 * 86_400L, "7.1.26", false, null, 31, 55, 83.0, 250.0, 212.0),
                    device(OFFICE, "Office Switch", "USL8LP", "usw", 0, null, "7.1.26", false, null, null, null, null, 52.0, null));
            List<JsonNode> health = List.of(
                    JSON.createObjectNode().put("subsystem", "wlan").put("status", "ok").put("num_ap", 2),
                    JSON.createObjectNode().put("subsystem", "wan").put("status", "ok").put("wan_ip", "203.0.113.7"),
                    JSON.createObjectNode().put("subsystem", "www").put("status", "ok"),
                    JSON.createObjectNode().put("subsystem", "lan").put("status", "warning").put("num_sw", 2).put("num_disconnected", 1),
                    JSON.createObjectNode().put("subsystem", "vpn").put("status", "unknown"));
            return new Dataset(new ArrayList<>(ev), ips, devices, health, List.of());
        }

        private static JsonNode device(String mac, String name, String model, String type, int state, Long uptime, String version,
                                       boolean upgradable, String upgradeTo, Integer cpu, Integer mem, Double temp, Double budget, Double used) {
            ObjectNode d = JSON.createObjectNode().put("_id", "5e3c" + mac.replace(":", "")).put("mac", mac).put("name", name).put("model", model)
                    .put("type", type).put("state", state).put("adopted", true).put("version", version).put("upgradable", upgradable);
            if (uptime != null) d.put("uptime", uptime);
            if (upgradeTo != null) d.put("upgrade_to_firmware", upgradeTo);
            if (cpu != null) d.putObject("system-stats").put("cpu", cpu + ".0").put("mem", mem + ".0").put("uptime", String.valueOf(uptime));
            if (temp != null) d.put("general_temperature", temp).put("has_temperature", true).put("overheating", temp >= 80);
            if (budget != null) {
                d.put("total_max_power", budget);
                var ports = d.putArray("port_table");
                if (used != null) for (int p = 1; p <= 8; p++) ports.addObject().put("port_idx", p).put("poe_enable", true).put("poe_power", String.format(Locale.ROOT, "%.2f", used / 8));
            }
            return d;
        }

        /** {@code n} everyday events, newest first, spread over the last 23 hours; made on demand. */
        static Dataset synthetic(Instant now, int n) {
            String[] keys = {"EVT_WU_Connected", "EVT_WU_Disconnected", "EVT_WU_Roam", "EVT_LU_Connected", "EVT_AP_Lost_Contact", "EVT_AP_Connected", "EVT_AD_LoginFailed"};
            long span = Duration.ofHours(23).toMillis(), newest = now.toEpochMilli() - 1_000;
            List<JsonNode> events = new java.util.AbstractList<>() {
                @Override
                public JsonNode get(int i) {
                    String key = keys[i % keys.length];
                    String ap = String.format("74:ac:b9:15:%02x:%02x", (i / 7) % 16, 1);
                    return JSON.createObjectNode().put("_id", String.format("65b0%020x", i)).put("key", key).put("time", newest - (span * i) / n)
                            .put("ap", ap).put("ap_name", "AP " + (i / 7) % 16).put("user", String.format("3c:22:fb:%02x:%02x:%02x", i % 256, (i / 256) % 256, 7))
                            .put("hostname", "client-" + i % 500).put("ip", "198.51.100." + i % 50).put("subsystem", "wlan")
                            .put("msg", key + " #" + i + " on AP[" + ap + "]");
                }

                @Override
                public int size() { return n; }
            };
            return new Dataset(events, List.of(), List.of(), List.of(), List.of());
        }
    }
}

