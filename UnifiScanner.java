///usr/bin/env jbang "$0" "$@" ; exit $?
//JAVA 17+
//DEPS info.picocli:picocli:4.7.7
//DEPS dev.failsafe:failsafe:3.3.2
//DEPS com.fasterxml.jackson.core:jackson-databind:2.20.1
//DEPS com.fasterxml.jackson.dataformat:jackson-dataformat-yaml:2.20.1

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

    static final int EXIT_OK = 0, EXIT_CONFIG = 1, EXIT_CONNECTION = 2, EXIT_AUTH = 3;

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
                  Duration pollInterval, Path healthFile, Level logLevel, boolean logJson) {

        boolean usesApiKey() { return apiKey != null; }

        @Override
        public String toString() {
            return "Config[" + scheme + "://" + host + (port == null ? "" : ":" + port) + ", username=" + username
                    + ", password=" + (password == null ? "unset" : "****") + ", apiKey=" + (apiKey == null ? "unset" : "****")
                    + ", site=" + site + ", type=" + controllerType + ", verifySsl=" + verifySsl + "]";
        }
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
            return validate(merged);
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
                    initial, max, poll, Path.of(value(raw, "health-file")), level, logJson);
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

        private void check(X509Certificate[] chain, String authType, Consumer<X509Certificate[]> verify) throws CertificateException {
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
                case VERIFY -> {
                    try {
                        verify.accept(chain);
                    } catch (UncheckedCert e) {
                        throw e.cause;
                    }
                }
            }
        }

        private static final class UncheckedCert extends RuntimeException {
            final CertificateException cause;

            UncheckedCert(CertificateException cause) {
                super(cause);
                this.cause = cause;
            }
        }

        private interface CertCheck { void run() throws CertificateException; }

        private static Consumer<X509Certificate[]> wrap(CertCheck c) {
            return chain -> {
                try {
                    c.run();
                } catch (CertificateException e) {
                    throw new UncheckedCert(e);
                }
            };
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine) throws CertificateException {
            check(chain, authType, wrap(() -> system.checkServerTrusted(chain, authType, engine)));
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket) throws CertificateException {
            check(chain, authType, wrap(() -> system.checkServerTrusted(chain, authType, socket)));
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            check(chain, authType, wrap(() -> system.checkServerTrusted(chain, authType)));
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

    record SysInfo(String version, String hostname, String model) {}

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

    static final class UnifiClient {
        static final List<Integer> DEFAULT_PORTS = List.of(443, 8443, 11443);
        static final Duration MAX_RETRY_AFTER = Duration.ofMinutes(5);
        static final int DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
        private static final Set<Integer> RETRIED_STATUS = Set.of(429, 502, 503, 504);

        private final Config config;
        private final Log log;
        private final Tls tls;
        private final HttpClient http;
        private final List<Integer> candidatePorts;
        private final Duration requestTimeout;
        int maxResponseBytes = DEFAULT_MAX_RESPONSE_BYTES;

        private final Map<String, String> cookies = new LinkedHashMap<>(); // guarded by itself
        private volatile String csrf;
        private final Object loginLock = new Object();
        private volatile long sessionGeneration; // bumped by every successful login
        private volatile boolean loggedIn;

        private String baseUrl;
        private Kind kind;
        private Site site;
        private SysInfo sysInfo;
        private int requests;

        UnifiClient(Config config, Log log) { this(config, log, null, DEFAULT_PORTS); }

        /** trustRoots replaces the system's CA certificates (tests); candidatePorts replaces 443/8443/11443. */
        UnifiClient(Config config, Log log, X509TrustManager trustRoots, List<Integer> candidatePorts) {
            this.config = config;
            this.log = log;
            this.tls = new Tls(config, trustRoots);
            this.candidatePorts = candidatePorts;
            this.requestTimeout = config.connectTimeout().multipliedBy(3);
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
        Optional<String> certificateFingerprint() { return config.scheme().equals("https") ? tls.presentedFingerprint() : Optional.empty(); }

        // ---- connect: detect, authenticate, pick the site, fingerprint --------------------

        /** Everything --test checks: detection, login, site selection, sysinfo. */
        void connect() {
            detect();
            if (!config.usesApiKey()) login();
            site = selectSite(sites(), config.site());
            sysInfo = readSysInfo();
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
                log.info("using the configured " + (kind == Kind.UNIFI_OS ? "UniFi OS" : "classic") + " controller at " + baseUrl);
                return;
            }
            Probe found = withRetry("detecting the controller at " + config.host(), false, () -> probeRound(ports, forced), this::probeRetryable);
            if (found.kind == null && RETRIED_STATUS.contains(found.status))
                throw new ConnectionException(found.url + " answered " + found.status + " to GET / after " + retriesText()
                        + ": the controller is restarting or overloaded; try again later");
            if (found.kind == null) {
                throw new ConnectionException(found.url + " does not look like a UniFi controller (GET / answered " + found.status
                        + "): check UNIFI_HOST and UNIFI_PORT, or set UNIFI_CONTROLLER_TYPE if it is one");
            }
            baseUrl = found.url;
            kind = found.kind;
            log.info("found a " + (kind == Kind.UNIFI_OS ? "UniFi OS" : "classic") + " controller at " + baseUrl
                    + (forced != null ? " (type configured, not probed)" : ""));
        }

        private record Probe(String url, int status, Kind kind, IOException failure) {}

        private Probe probeRound(List<Integer> ports, Kind forced) throws IOException {
            Probe firstAnswer = null;
            IOException firstFailure = null;
            for (int port : ports) {
                String url = urlFor(port);
                try {
                    Answer a = exchange("GET", url, "/", null, false);
                    Kind k = forced != null ? forced : a.status() == 200 ? Kind.UNIFI_OS : a.status() == 302 ? Kind.CLASSIC : null;
                    Probe p = new Probe(url, a.status(), k, null);
                    if (k != null && !RETRIED_STATUS.contains(a.status())) return p;
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

        private boolean probeRetryable(Probe p) { return RETRIED_STATUS.contains(p.status()); }

        private String urlFor(int port) {
            boolean standard = (config.scheme().equals("https") && port == 443) || (config.scheme().equals("http") && port == 80);
            return config.scheme() + "://" + hostForUrl() + (standard ? "" : ":" + port);
        }

        private String hostForUrl() { return config.host().contains(":") ? "[" + config.host() + "]" : config.host(); }

        /** Logs in with username and password (UniFi OS or classic flow). Counts as a new session. */
        void login() {
            ObjectNode body = JSON.createObjectNode().put("username", config.username()).put("password", config.password());
            if (kind == Kind.UNIFI_OS) body.put("rememberMe", false).put("token", "");
            synchronized (cookies) { cookies.clear(); }
            csrf = null;
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
            boolean haveSession;
            synchronized (cookies) { haveSession = kind.sessionCookies.stream().anyMatch(cookies::containsKey); }
            if (!haveSession)
                throw new ConnectionException("login at " + baseUrl + " answered 200 but set no session cookie (" + String.join("/", kind.sessionCookies) + ")");
            String token = a.header("X-CSRF-Token");
            if (token == null) synchronized (cookies) { token = cookies.get("csrf_token"); }
            if (token != null) {
                csrf = token;
                log.secret(token);
            }
            loggedIn = true;
            sessionGeneration++;
            log.info("logged in as '" + config.username() + "'");
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
            synchronized (cookies) { cookies.clear(); }
            csrf = null;
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
            return new SysInfo(d.path("version").asText(null), d.path("hostname").asText(null), model);
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
                log.info(method + " " + full + " answered 401: the session expired, logging in again");
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
            if (RETRIED_STATUS.contains(a.status()))
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

        private interface Attempt<T> { T run() throws IOException; }

        /**
         * Runs an attempt under the retry policy: transport failures and the statuses in RETRIED_STATUS are retried
         * with exponential backoff and jitter, Retry-After is honoured (clamped), a rate-limited login waits the max
         * delay. When retries run out, the last answer is returned (the caller names it) or the last failure thrown.
         */
        private <T> T withRetry(String what, boolean isLogin, Attempt<T> attempt, java.util.function.Predicate<T> retryResult) {
            RetryPolicy<T> policy = RetryPolicy.<T>builder()
                    .handleIf((result, failure) -> failure != null ? failure instanceof IOException io && retryable(io) : retryResult.test(result))
                    .withMaxRetries(config.maxRetries())
                    .withDelayFn(ctx -> nextDelay(ctx.getLastResult(), ctx.getAttemptCount(), isLogin))
                    .onRetryScheduled(e -> log.warn(what + " failed: " + cause(e.getLastResult(), e.getLastException())
                            + "; retry " + e.getAttemptCount() + " of " + config.maxRetries() + " in " + Durations.format(e.getDelay())))
                    .build();
            try {
                return Failsafe.with(policy).get(attempt::run);
            } catch (FailsafeException e) {
                Throwable c = e.getCause();
                if (c instanceof IOException io) throw transportError(io, what);
                if (c instanceof InterruptedException) throw new ConnectionException(what + " was interrupted");
                throw new ConnectionException(what + " failed: " + c);
            }
        }

        private String retriesText() { return config.maxRetries() + (config.maxRetries() == 1 ? " retry" : " retries"); }

        private boolean retryableStatus(Answer a) { return RETRIED_STATUS.contains(a.status()); }

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

        static boolean retryable(IOException e) {
            return !(e instanceof SSLException) && !(e instanceof UnknownHostException) && !(e.getCause() instanceof UnresolvedAddressException)
                    && !(e instanceof ResponseTooLarge);
        }

        private String cause(Object result, Throwable failure) {
            if (result instanceof Answer a) return "HTTP " + a.status();
            if (result instanceof Probe p) return "GET / answered " + p.status();
            return failure instanceof IOException io ? describeIo(io) : String.valueOf(failure);
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
         * Sends one request and reads the whole answer (up to maxResponseBytes). With {@code session}, cookies and
         * the CSRF token are sent and updated from the answer; without, nothing is sent or kept (a throwaway jar).
         */
        Answer exchange(String method, String base, String path, String body, boolean session) throws IOException {
            HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path))
                    .timeout(requestTimeout)
                    .header("Accept", "application/json")
                    .header("User-Agent", "unifi-scanner/" + VERSION);
            if (body != null) b.header("Content-Type", "application/json");
            b.method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8));
            if (session) {
                if (config.usesApiKey()) b.header("X-API-KEY", config.apiKey());
                String cookieHeader;
                synchronized (cookies) {
                    cookieHeader = String.join("; ", cookies.entrySet().stream().map(c -> c.getKey() + "=" + c.getValue()).toList());
                }
                if (!cookieHeader.isEmpty()) b.header("Cookie", cookieHeader);
                if (csrf != null) b.header("X-CSRF-Token", csrf);
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
                throw new IOException(String.valueOf(e.getCause()), e.getCause());
            }
            if (session) remember(r.headers());
            log.debug(method + " " + path + " -> " + r.statusCode() + " (" + (System.nanoTime() - started) / 1_000_000 + " ms, " + r.body().length + " bytes)");
            return new Answer(method, path, r.statusCode(), r.headers(), r.body());
        }

        private void remember(HttpHeaders headers) {
            headers.firstValue("X-Updated-Csrf-Token").ifPresent(t -> {
                log.secret(t);
                csrf = t;
            });
            for (String setCookie : headers.allValues("Set-Cookie")) {
                String[] parts = setCookie.split(";");
                int eq = parts[0].indexOf('=');
                if (eq <= 0) continue;
                String name = parts[0].substring(0, eq).trim(), value = parts[0].substring(eq + 1).trim();
                boolean expired = value.isEmpty() || setCookie.toLowerCase(Locale.ROOT).matches(".*;\\s*max-age=0\\b.*");
                synchronized (cookies) {
                    if (expired) cookies.remove(name);
                    else {
                        cookies.put(name, value);
                        log.secret(value);
                    }
                }
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
            ResponseTooLarge(int cap) { super("the answer was larger than " + cap / (1024 * 1024) + " MiB, the most this tool reads"); }
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
                Path dir = path.toAbsolutePath().getParent();
                Files.createDirectories(dir);
                Path tmp = Files.createTempFile(dir, "." + path.getFileName() + ".", ".tmp");
                try {
                    Files.writeString(tmp, doc.toString() + "\n", StandardCharsets.UTF_8);
                    try {
                        Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rw-r--r--"));
                    } catch (UnsupportedOperationException ignored) { /* not a POSIX file system */ }
                    try {
                        Files.move(tmp, path, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
                    } catch (AtomicMoveNotSupportedException e) {
                        Files.move(tmp, path, StandardCopyOption.REPLACE_EXISTING);
                    }
                } finally {
                    Files.deleteIfExists(tmp);
                }
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
    // Banner
    // =====================================================================================

    static List<String> banner(Config c, UnifiClient client) {
        List<String> lines = new ArrayList<>();
        lines.add(NAME + " " + VERSION);
        StringBuilder ctl = new StringBuilder("Controller: " + client.baseUrl() + " — " + client.describeKind());
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

        void track(UnifiClient client, HealthFile health) {
            this.client = client;
            this.health = health;
        }

        void finished() { finished = true; }

        /** Runs on SIGINT/SIGTERM (JVM shutdown hook); the JVM then exits 130/143. */
        void onSignal() {
            if (finished) return;
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
            exitCodeList = {"0:success", "1:configuration problem (fix the settings)", "2:connection problem (controller unreachable, TLS, bad answers)",
                    "3:authentication problem (credentials, MFA, API key, login rate limit)", "130:interrupted (SIGINT)", "143:terminated (SIGTERM)"})
    static final class Cli implements java.util.concurrent.Callable<Integer> {
        @Spec CommandSpec spec;

        @Option(names = "--test", description = "Check the configuration and the connection (detect, log in, pick the site, read sysinfo, log out), then exit.")
        boolean test;

        @Option(names = "--health-check", description = "Exit 0 if the health file says healthy and is fresh, else 1. No network.")
        boolean healthCheck;

        @Option(names = {"-c", "--config"}, paramLabel = "FILE", description = "YAML configuration file. Env: CONFIG_PATH")
        Path configFile;

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
                String help = s.help() + " Env: " + s.env() + (s.defaultValue() == null || s.secret() ? "" : ". Default: " + s.defaultValue());
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
            return cmd.execute(args);
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
            if (healthCheck) return healthCheck();
            Config config;
            try {
                config = ConfigLoader.load(cliValues(), configFile, env);
            } catch (ScannerException e) {
                err.println("unifi-scanner: " + log.scrub(e.getMessage()));
                return e.exitCode;
            }
            log.configure(config.logLevel(), config.logJson());
            log.debug("configuration: " + config);
            return connectionCheck(config);
        }

        private Map<String, String> cliValues() {
            Map<String, String> values = new LinkedHashMap<>();
            CommandLine.ParseResult parsed = spec.commandLine().getParseResult();
            for (Setting s : SETTINGS) {
                if (parsed.hasMatchedOption("--" + s.key())) values.put(s.key(), parsed.matchedOptionValue("--" + s.key(), ""));
            }
            return values;
        }

        /** --test (and, until scanning lands, the default run): connect, log in, pick the site, read sysinfo, log out. */
        private int connectionCheck(Config config) {
            HealthFile health = new HealthFile(config.healthFile(), log);
            UnifiClient client = new UnifiClient(config, log);
            if (guard != null) guard.track(client, health);
            health.write(HealthFile.Status.STARTING, Map.of("mode", "test"));
            try {
                client.connect();
                banner(config, client).forEach(out::println);
                client.certificateFingerprint().ifPresent(fp -> out.println("Certificate: " + fp));
                out.println("Configuration and connection: OK");
                health.write(HealthFile.Status.HEALTHY, Map.of("mode", "test", "controller", client.baseUrl(), "site", client.site().name()));
                return EXIT_OK;
            } catch (ScannerException e) {
                String line = log.scrub(e.getMessage());
                health.write(HealthFile.Status.UNHEALTHY, Map.of("mode", "test", "error", line));
                err.println("unifi-scanner: " + line);
                return e.exitCode;
            } finally {
                client.logout();
            }
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
}
