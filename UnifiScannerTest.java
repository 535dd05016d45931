///usr/bin/env jbang "$0" "$@" ; exit $?
//JAVA 17+
//SOURCES UnifiScanner.java
//COMPILE_OPTIONS -encoding UTF-8
//JAVA_OPTIONS -Dfile.encoding=UTF-8
//DEPS org.junit:junit-bom:5.14.4@pom
//DEPS org.junit.jupiter:junit-jupiter
//DEPS org.junit.platform:junit-platform-launcher
//DEPS com.squareup.okhttp3:mockwebserver3:5.3.2
//DEPS com.squareup.okhttp3:okhttp-tls:5.3.2
//DEPS com.icegreen:greenmail:2.1.2

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import mockwebserver3.Dispatcher;
import mockwebserver3.MockResponse;
import mockwebserver3.MockWebServer;
import mockwebserver3.RecordedRequest;
import mockwebserver3.SocketEffect;
import okhttp3.tls.HandshakeCertificates;
import okhttp3.tls.HeldCertificate;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherFactory;
import org.junit.platform.launcher.listeners.SummaryGeneratingListener;
import org.junit.platform.launcher.listeners.TestExecutionSummary;
import org.junit.platform.engine.TestExecutionResult;

import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509TrustManager;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyStore;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.temporal.ChronoUnit;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;
import static org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder.request;

/**
 * Tests for UnifiScanner. The controller is faked over real HTTPS with MockWebServer; its answers are shaped like
 * the real payloads in the project's reference (login user object, sites envelope, sysinfo record).
 * Run: ./jbang UnifiScannerTest.java — the last line is "N passed, N failed".
 */
public class UnifiScannerTest {

    public static void main(String[] args) {
        Launcher launcher = LauncherFactory.create();
        SummaryGeneratingListener summary = new SummaryGeneratingListener();
        TestExecutionListener progress = new TestExecutionListener() {
            @Override
            public void executionFinished(TestIdentifier id, TestExecutionResult result) {
                if (!id.isTest()) return;
                String status = result.getStatus() == TestExecutionResult.Status.SUCCESSFUL ? "ok  " : "FAIL";
                System.out.println(status + " " + id.getDisplayName()
                        + result.getThrowable().map(t -> " — " + t.getMessage()).orElse(""));
            }
        };
        launcher.execute(request().selectors(selectClass(UnifiScannerTest.class)).build(), summary, progress);
        TestExecutionSummary s = summary.getSummary();
        if (s.getTotalFailureCount() > 0) s.printFailuresTo(new PrintWriter(System.out, true), 15);
        long failed = s.getTotalFailureCount();
        System.out.println(s.getTestsSucceededCount() + " passed, " + failed + " failed");
        System.exit(failed > 0 || s.getTestsSucceededCount() == 0 ? 1 : 0);
    }

    // =====================================================================================
    // Fixtures: one TLS identity like a console's (self-signed, CN=unifi.local, no IP), payloads from real controllers
    // =====================================================================================

    static final HeldCertificate CONSOLE_CERT = new HeldCertificate.Builder()
            .commonName("unifi.local").addSubjectAlternativeName("unifi.local").rsa2048().build();
    static final String CONSOLE_PIN = UnifiScanner.Tls.fingerprint(CONSOLE_CERT.certificate());
    static final ObjectMapper JSON = new ObjectMapper();

    static final String USERNAME = "scanner";
    /** Quotes, a backslash and spaces: the login body must be built by a JSON serializer. */
    static final String PASSWORD = "pa\"ss\\ w0rd {x}";
    static final String API_KEY = "k3y-Xq9-secret-api-key";

    /** Shaped like unifi-samples/stat-sysinfo-record.json (UDM Pro, Network 7.4). */
    static final String SYSINFO = """
            {"meta":{"rc":"ok"},"data":[{"build":"atag_7.4.162_21057","console_display_version":"3.1.15",
             "hostname":"UDMP","https_port":8443,"name":"UDMP","timezone":"Europe/Stockholm","ubnt_device_type":"UDMPRO",
             "udm_version":"3.0.20.9281","update_available":false,"uptime":1196290,"version":"7.4.162"}]}""";

    /** Shaped like unifi-samples/unifi-os-login-response.json: a user object, not an envelope. */
    static final String LOGIN_USER = """
            {"unique_id":"868d288b-a642-4209-a768-8425498fa928","username":"scanner","first_name":"Scanner",
             "status":"ACTIVE","local_account_exist":true,"roles":[{"name":"Super Administrator","system_role":true}],
             "permissions":{"network.management":["admin"]},"isOwner":false,"deviceToken":""}""";

    record Site(String name, String desc) {}

    /**
     * A UniFi controller that behaves like the reference: detection answer, both login flows, session cookies,
     * CSRF (with optional rotation), API keys, 401 on expired sessions, sites and sysinfo. A script of canned
     * answers per "METHOD /path" lets a test inject failures before the normal behaviour.
     */
    static final class FakeController extends Dispatcher {
        final boolean unifiOs;
        String tokenCookie = "TOKEN";
        String apiKey;
        String rotatedCsrf;
        volatile List<Site> sites = List.of(new Site("default", "Default"));
        volatile long expiredDelayMillis;
        volatile Path healthFileToPeek;
        volatile String healthAtLogin;
        volatile CountDownLatch stallSysinfo;
        final Set<String> validTokens = ConcurrentHashMap.newKeySet();
        final Map<String, ConcurrentLinkedDeque<MockResponse>> script = new ConcurrentHashMap<>();
        final List<RecordedRequest> requests = Collections.synchronizedList(new ArrayList<>());
        final AtomicInteger logins = new AtomicInteger(), logouts = new AtomicInteger();
        volatile String csrf;

        FakeController(boolean unifiOs) { this.unifiOs = unifiOs; }

        String prefix() { return unifiOs ? "/proxy/network" : ""; }

        void then(String methodAndPath, MockResponse... answers) {
            script.computeIfAbsent(methodAndPath, k -> new ConcurrentLinkedDeque<>()).addAll(List.of(answers));
        }

        void expireSessions() { validTokens.clear(); }

        List<RecordedRequest> requests(String method, String path) {
            synchronized (requests) {
                return requests.stream().filter(r -> r.getMethod().equals(method) && r.getUrl().encodedPath().equals(path)).toList();
            }
        }

        @Override
        public MockResponse dispatch(RecordedRequest r) throws InterruptedException {
            requests.add(r);
            String path = r.getUrl().encodedPath();
            MockResponse scripted = Optional.ofNullable(script.get(r.getMethod() + " " + path)).map(ConcurrentLinkedDeque::poll).orElse(null);
            if (scripted != null) return scripted;
            if (path.equals("/") && r.getMethod().equals("GET"))
                return unifiOs ? answer(200, "<!doctype html><html><head><title>UniFi OS</title></head></html>").build()
                        : answer(302, "").addHeader("Location", "/manage").build();
            if (path.equals(unifiOs ? "/api/auth/login" : "/api/login") && r.getMethod().equals("POST")) return login(r);
            if (apiKey != null) {
                if (!apiKey.equals(r.getHeaders().get("X-API-KEY"))) return answer(401, "{\"error\":{\"code\":401,\"message\":\"Unauthorized\"}}").build();
            } else if (!authenticated(r)) {
                if (expiredDelayMillis > 0) Thread.sleep(expiredDelayMillis);
                return unifiOs ? answer(401, "").build() : answer(401, "{\"meta\":{\"rc\":\"error\",\"msg\":\"api.err.LoginRequired\"},\"data\":[]}").build();
            }
            if (apiKey == null && !r.getMethod().equals("GET") && !String.valueOf(csrf).equals(r.getHeaders().get("X-CSRF-Token")))
                return answer(403, "{\"message\":\"Invalid CSRF Token\"}").build();
            if (path.equals(unifiOs ? "/api/auth/logout" : "/api/logout")) {
                logouts.incrementAndGet();
                return answer(200, unifiOs ? "" : "{\"meta\":{\"rc\":\"ok\"},\"data\":[]}").build();
            }
            if (path.equals(prefix() + "/api/self/sites")) {
                StringBuilder data = new StringBuilder();
                for (Site s : sites) data.append(data.length() == 0 ? "" : ",").append("{\"_id\":\"5e231c10931eb902acf2511").append(data.length() % 10)
                        .append("\",\"name\":\"").append(s.name()).append("\",\"desc\":\"").append(s.desc()).append("\",\"role\":\"admin\"}");
                MockResponse.Builder b = answer(200, "{\"meta\":{\"rc\":\"ok\"},\"data\":[" + data + "]}");
                if (rotatedCsrf != null) {
                    csrf = rotatedCsrf;
                    b.addHeader("X-Updated-Csrf-Token", rotatedCsrf);
                }
                return b.build();
            }
            if (path.matches(prefix() + "/api/s/[^/]+/stat/sysinfo")) {
                CountDownLatch stall = stallSysinfo;
                if (stall != null) stall.await(30, TimeUnit.SECONDS);
                return answer(200, SYSINFO).build();
            }
            return answer(404, unifiOs ? "{\"errorCode\":404,\"message\":\"Not Found\"}" : "{\"meta\":{\"rc\":\"error\",\"msg\":\"api.err.NotFound\"},\"data\":[]}").build();
        }

        private boolean authenticated(RecordedRequest r) {
            String cookie = Optional.ofNullable(r.getHeaders().get("Cookie")).orElse("");
            for (String part : cookie.split(";\\s*")) {
                String[] kv = part.split("=", 2);
                if (kv.length == 2 && kv[0].equals(unifiOs ? tokenCookie : "unifises") && validTokens.contains(kv[1])) return true;
            }
            return false;
        }

        private MockResponse login(RecordedRequest r) {
            if (healthFileToPeek != null) {
                try {
                    healthAtLogin = Files.readString(healthFileToPeek);
                } catch (IOException e) {
                    healthAtLogin = "unreadable: " + e;
                }
            }
            JsonNode body;
            try {
                body = JSON.readTree(r.getBody().utf8());
            } catch (IOException e) {
                return answer(400, "{\"code\":\"BAD_REQUEST\"}").build();
            }
            if (!USERNAME.equals(body.path("username").asText()) || !PASSWORD.equals(body.path("password").asText())) {
                return unifiOs ? answer(401, "{\"code\":\"AUTHENTICATION_FAILED_INVALID_CREDENTIALS\",\"message\":\"Invalid username or password\"}").build()
                        : answer(400, "{\"meta\":{\"rc\":\"error\",\"msg\":\"api.err.Invalid\"},\"data\":[]}").build();
            }
            int n = logins.incrementAndGet();
            String token = (unifiOs ? "eyJhbGciOiJIUzI1NiJ9.session-" : "unifises-session-") + n;
            validTokens.add(token);
            csrf = "csrf-token-" + n;
            if (unifiOs)
                return answer(200, LOGIN_USER).addHeader("Set-Cookie", tokenCookie + "=" + token + "; path=/; samesite=none; secure; httponly")
                        .addHeader("X-CSRF-Token", csrf).build();
            return answer(200, "{\"meta\":{\"rc\":\"ok\"},\"data\":[]}")
                    .addHeader("Set-Cookie", "unifises=" + token + "; Path=/; Secure; HttpOnly")
                    .addHeader("Set-Cookie", "csrf_token=" + csrf + "; Path=/; Secure").build();
        }
    }

    static MockResponse.Builder answer(int code, String body) {
        MockResponse.Builder b = new MockResponse.Builder().code(code).body(body);
        if (body.startsWith("{") || body.startsWith("[")) b.addHeader("Content-Type", "application/json; charset=utf-8");
        else if (!body.isEmpty()) b.addHeader("Content-Type", "text/html");
        return b;
    }

    static MockWebServer httpsServer(Dispatcher d) throws IOException {
        MockWebServer server = new MockWebServer();
        server.useHttps(new HandshakeCertificates.Builder().heldCertificate(CONSOLE_CERT).build().sslSocketFactory());
        server.setDispatcher(d);
        server.start();
        return server;
    }

    record Run(int code, String out, String err) {
        String all() { return out + err; }
    }

    static Run cli(Map<String, String> env, String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int code = UnifiScanner.Cli.run(args, env, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8), null);
        return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    static UnifiScanner.Config config(Map<String, String> env) {
        return UnifiScanner.ConfigLoader.load(Map.of(), null, env);
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) { return s.getLocalPort(); }
    }

    /** A test harness: a fake controller over HTTPS and the environment a user would set for it. */
    abstract static class WithController {
        FakeController fake;
        MockWebServer server;
        Map<String, String> env;
        Path dir;

        boolean unifiOs() { return true; }

        @BeforeEach
        void start() throws IOException {
            fake = new FakeController(unifiOs());
            server = httpsServer(fake);
            dir = Files.createTempDirectory("unifi-scanner-test");
            env = new HashMap<>(Map.of(
                    "UNIFI_HOST", "127.0.0.1", "UNIFI_PORT", String.valueOf(server.getPort()),
                    "UNIFI_USERNAME", USERNAME, "UNIFI_PASSWORD", PASSWORD,
                    "UNIFI_CERT_FINGERPRINT", CONSOLE_PIN,
                    "UNIFI_RETRY_INITIAL_DELAY", "0.01s", "UNIFI_RETRY_MAX_DELAY", "0.05s", "UNIFI_MAX_RETRIES", "3",
                    "UNIFI_CONNECT_TIMEOUT", "2s", "UNIFI_HEALTH_FILE", dir.resolve("health.json").toString()));
        }

        @AfterEach
        void stop() throws IOException {
            server.close();
            try (var files = Files.walk(dir)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }

        Run test() { return cli(env, "--test"); }

        UnifiScanner.UnifiClient client(Map<String, String> overrides) {
            Map<String, String> e = new HashMap<>(env);
            e.putAll(overrides);
            return new UnifiScanner.UnifiClient(config(e), new UnifiScanner.Log(new PrintStream(new ByteArrayOutputStream())));
        }

        JsonNode health() throws IOException { return JSON.readTree(Files.readString(dir.resolve("health.json"))); }
    }

    // =====================================================================================
    // Detection
    // =====================================================================================

    @Nested
    class Detection extends WithController {
        @Test
        void unifiOsAnswers200AndIsReadUnderProxyNetwork() throws Exception {
            Run r = test();
            assertEquals(0, r.code(), r.err());
            RecordedRequest probe = fake.requests.get(0);
            assertEquals("GET /", probe.getMethod() + " " + probe.getUrl().encodedPath());
            assertNull(probe.getHeaders().get("Cookie"), "the probe must use a throwaway cookie jar");
            assertEquals(1, fake.requests("POST", "/api/auth/login").size());
            assertEquals(1, fake.requests("GET", "/proxy/network/api/self/sites").size());
            assertEquals(1, fake.requests("GET", "/proxy/network/api/s/default/stat/sysinfo").size());
            assertTrue(r.out().contains("UniFi OS console (UDMPRO), Network 7.4.162"), r.out());
        }

        @Test
        void aProbeCookieIsNotKeptForTheLogin() {
            fake.then("GET /", answer(200, "<html></html>").addHeader("Set-Cookie", "probe=crumb; Path=/").build());
            assertEquals(0, test().code());
            assertNull(fake.requests("POST", "/api/auth/login").get(0).getHeaders().get("Cookie"));
        }

        @Test
        void aHostThatAnswersNeitherWayIsNotAController() {
            fake.then("GET /", answer(404, "<html>Not Found</html>").build());
            Run r = test();
            assertEquals(2, r.code());
            assertTrue(r.err().contains("does not look like a UniFi controller (GET / answered 404)"), r.err());
            assertEquals(1, fake.requests.size(), "a 404 is not retried and nothing else is tried");
        }

        @Test
        void aConfiguredTypeSkipsTheProbe() {
            env.put("UNIFI_CONTROLLER_TYPE", "unifi-os");
            assertEquals(0, test().code());
            assertTrue(fake.requests("GET", "/").isEmpty(), "no GET / when the type is configured");
        }

        @Test
        void portsAreTriedInOrderUntilOneAnswersLikeAController() throws Exception {
            int closed = freePort();
            env.remove("UNIFI_PORT");
            var client = new UnifiScanner.UnifiClient(config(env), new UnifiScanner.Log(new PrintStream(new ByteArrayOutputStream())),
                    null, List.of(closed, server.getPort()));
            client.detect();
            assertEquals("https://127.0.0.1:" + server.getPort(), client.baseUrl());
            assertEquals(UnifiScanner.Kind.UNIFI_OS, client.kind());
        }

        @Test
        void withNoPortAndNothingListeningTheErrorNamesThePortsTried() throws Exception {
            env.remove("UNIFI_PORT");
            env.put("UNIFI_MAX_RETRIES", "1");
            var client = new UnifiScanner.UnifiClient(config(env), new UnifiScanner.Log(new PrintStream(new ByteArrayOutputStream())),
                    null, List.of(freePort(), freePort()));
            var e = assertThrows(UnifiScanner.ConnectionException.class, client::detect);
            assertTrue(e.getMessage().contains("connection refused") && e.getMessage().contains("tried ports"), e.getMessage());
        }
    }

    @Nested
    class ClassicController extends WithController {
        @Override boolean unifiOs() { return false; }

        @Test
        void classicAnswers302AndLogsInAtApiLoginWithUnifisesCookie() {
            Run r = test();
            assertEquals(0, r.code(), r.err());
            assertEquals(1, fake.requests("POST", "/api/login").size());
            RecordedRequest sites = fake.requests("GET", "/api/self/sites").get(0);
            assertEquals("unifises=unifises-session-1; csrf_token=csrf-token-1", sites.getHeaders().get("Cookie"));
            assertEquals("csrf-token-1", sites.getHeaders().get("X-CSRF-Token"), "classic CSRF comes from the csrf_token cookie");
            assertEquals(1, fake.requests("POST", "/api/logout").size());
            assertEquals(1, fake.logouts.get());
            assertTrue(r.out().contains("classic Network application"), r.out());
        }

        @Test
        void classicBadCredentialsAreAnAuthenticationFailure() {
            env.put("UNIFI_PASSWORD", "wrong");
            Run r = test();
            assertEquals(3, r.code());
            assertTrue(r.err().contains("the controller rejected username 'scanner'"), r.err());
        }

        @Test
        void classic2faAccountIsToldToUseALocalAccount() {
            fake.then("POST /api/login", answer(400, "{\"meta\":{\"rc\":\"error\",\"msg\":\"api.err.Ubic2faTokenRequired\"},\"data\":[]}").build());
            Run r = test();
            assertEquals(3, r.code());
            assertTrue(r.err().contains("multi-factor"), r.err());
        }

        @Test
        void classicLoginRequiredTriggersOneReloginAndReplay() {
            var client = client(Map.of());
            client.connect();
            fake.expireSessions();
            assertEquals("default", client.get("/api/self/sites").path("data").path(0).path("name").asText());
            assertEquals(2, fake.logins.get());
        }
    }

    // =====================================================================================
    // Logging in: UniFi OS flow, cookies, CSRF, API key, failures
    // =====================================================================================

    @Nested
    class Login extends WithController {
        @Test
        void loginBodyIsJsonWithTheExactPasswordAndTheSessionIsUsedAndClosed() throws Exception {
            assertEquals(0, test().code());
            RecordedRequest login = fake.requests("POST", "/api/auth/login").get(0);
            JsonNode body = JSON.readTree(login.getBody().utf8());
            assertEquals(USERNAME, body.get("username").asText());
            assertEquals(PASSWORD, body.get("password").asText());
            assertFalse(body.get("rememberMe").asBoolean());
            assertEquals("", body.get("token").asText());
            assertTrue(login.getHeaders().get("Content-Type").startsWith("application/json"));
            RecordedRequest sites = fake.requests("GET", "/proxy/network/api/self/sites").get(0);
            assertEquals("TOKEN=eyJhbGciOiJIUzI1NiJ9.session-1", sites.getHeaders().get("Cookie"));
            assertEquals("csrf-token-1", sites.getHeaders().get("X-CSRF-Token"));
            RecordedRequest logout = fake.requests("POST", "/api/auth/logout").get(0);
            assertEquals("csrf-token-1", logout.getHeaders().get("X-CSRF-Token"));
            assertEquals(1, fake.logouts.get());
        }

        @Test
        void uosTokenCookieOfUnifiOs4IsAccepted() {
            fake.tokenCookie = "UOS_TOKEN";
            Run r = test();
            assertEquals(0, r.code(), r.err());
            assertTrue(fake.requests("GET", "/proxy/network/api/self/sites").get(0).getHeaders().get("Cookie").startsWith("UOS_TOKEN="));
        }

        @Test
        void anUpdatedCsrfTokenReplacesTheOldOne() {
            fake.rotatedCsrf = "csrf-rotated-7";
            assertEquals(0, test().code());
            assertEquals("csrf-token-1", fake.requests("GET", "/proxy/network/api/self/sites").get(0).getHeaders().get("X-CSRF-Token"));
            assertEquals("csrf-rotated-7", fake.requests("GET", "/proxy/network/api/s/default/stat/sysinfo").get(0).getHeaders().get("X-CSRF-Token"));
            assertEquals("csrf-rotated-7", fake.requests("POST", "/api/auth/logout").get(0).getHeaders().get("X-CSRF-Token"));
            assertEquals(1, fake.logouts.get(), "the logout with the rotated token was accepted");
        }

        @Test
        void badCredentialsExit3NamingTheUser() {
            env.put("UNIFI_PASSWORD", "not-it");
            Run r = test();
            assertEquals(3, r.code());
            assertTrue(r.err().contains("the controller rejected username 'scanner'"), r.err());
            assertEquals(1, fake.requests("POST", "/api/auth/login").size(), "bad credentials are never retried");
        }

        @Test
        void mfaRequiredExplainsWhatToDo() {
            fake.then("POST /api/auth/login", answer(499, "{\"code\":\"MFA_AUTH_REQUIRED\",\"message\":\"MFA required\"}").build());
            Run r = test();
            assertEquals(3, r.code());
            assertTrue(r.err().contains("local account without MFA") && r.err().contains("UNIFI_API_KEY"), r.err());
        }

        @Test
        void apiKeyIsSentOnEveryRequestWithoutLoginLogoutOrCsrf() {
            fake.apiKey = API_KEY;
            env.remove("UNIFI_USERNAME");
            env.remove("UNIFI_PASSWORD");
            env.put("UNIFI_API_KEY", API_KEY);
            Run r = test();
            assertEquals(0, r.code(), r.err());
            assertTrue(fake.requests("GET", "/").isEmpty(), "an API key implies UniFi OS: no probe");
            assertTrue(fake.requests("POST", "/api/auth/login").isEmpty());
            assertTrue(fake.requests("POST", "/api/auth/logout").isEmpty());
            for (RecordedRequest q : fake.requests) {
                assertEquals(API_KEY, q.getHeaders().get("X-API-KEY"));
                assertNull(q.getHeaders().get("X-CSRF-Token"));
            }
            assertTrue(r.out().contains("Auth: API key"), r.out());
        }

        @Test
        void aRejectedApiKeyExits3() {
            fake.apiKey = "the-real-key";
            env.remove("UNIFI_PASSWORD");
            env.put("UNIFI_API_KEY", API_KEY);
            Run r = test();
            assertEquals(3, r.code());
            assertTrue(r.err().contains("rejected the API key"), r.err());
        }

        @Test
        void aRateLimitedLoginWaitsTheMaxDelayAndEndsInExit3() {
            MockResponse limited = answer(429, "{\"code\":\"AUTHENTICATION_FAILED_LIMIT_REACHED\",\"message\":\"You've reached the login attempt limit\"}").build();
            fake.then("POST /api/auth/login", limited, limited, limited, limited);
            env.put("UNIFI_RETRY_MAX_DELAY", "0.2s");
            Run r = test();
            assertEquals(3, r.code());
            assertTrue(r.err().contains("the controller is rate-limiting logins") && r.err().contains("wait a minute"), r.err());
            assertEquals(4, fake.requests("POST", "/api/auth/login").size(), "1 try + 3 retries");
            long waits = r.err().lines().filter(l -> l.contains("logging in failed: HTTP 429") && l.endsWith("in 200ms")).count();
            assertEquals(3, waits, "each retry of a rate-limited login waits the max delay, no jitter:\n" + r.err());
        }
    }

    // =====================================================================================
    // Staying connected: 401 → one shared re-login → replay; retries; bad answers
    // =====================================================================================

    @Nested
    class SessionExpiry extends WithController {
        @Test
        void anExpiredSessionLogsInOnceAndReplaysTheRequest() {
            var client = client(Map.of());
            client.connect();
            fake.expireSessions();
            JsonNode sites = client.get("/api/self/sites");
            assertEquals("default", sites.path("data").path(0).path("name").asText());
            assertEquals(2, fake.logins.get());
            assertEquals(3, fake.requests("GET", "/proxy/network/api/self/sites").size(), "connect, the 401, the replay");
        }

        @Test
        void loginRequiredBodiesOfEveryKindTriggerARelogin() {
            var client = client(Map.of());
            client.connect();
            fake.then("GET /proxy/network/api/self/sites",
                    answer(401, "<html><body>Unauthorized</body></html>").build());
            client.get("/api/self/sites");
            fake.then("GET /proxy/network/api/self/sites", answer(401, "{\"errorCode\":401,\"message\":\"api.err.LoginRequired\"}").build());
            client.get("/api/self/sites");
            assertEquals(3, fake.logins.get());
        }

        @Test
        void aSecond401RightAfterAFreshLoginIsAnAuthenticationFailure() {
            var client = client(Map.of());
            client.connect();
            MockResponse denied = answer(401, "").build();
            fake.then("GET /proxy/network/api/s/default/stat/sysinfo", denied, denied);
            var e = assertThrows(UnifiScanner.AuthException.class, client::readSysInfo);
            assertTrue(e.getMessage().contains("right after a fresh login"), e.getMessage());
            assertEquals(2, fake.logins.get(), "exactly one re-login");
        }

        @Test
        void concurrentRequestsThatSeeTheSameExpiryShareOneRelogin() throws Exception {
            var client = client(Map.of());
            client.connect();
            fake.expireSessions();
            fake.expiredDelayMillis = 300; // all requests get their 401 from the same expired session
            ExecutorService pool = Executors.newFixedThreadPool(8);
            try {
                List<Future<JsonNode>> results = new ArrayList<>();
                for (int i = 0; i < 8; i++) results.add(pool.submit(() -> client.get("/api/self/sites")));
                for (Future<JsonNode> f : results) assertEquals("default", f.get(20, TimeUnit.SECONDS).path("data").path(0).path("name").asText());
            } finally {
                pool.shutdownNow();
            }
            assertEquals(2, fake.logins.get(), "one login at connect, one shared re-login");
        }

        @Test
        void a404OrA400NeverTriggersARelogin() {
            var client = client(Map.of());
            client.connect();
            var missing = assertThrows(UnifiScanner.ApiException.class, () -> client.get("/api/s/default/stat/event"));
            assertTrue(missing.endpointMissing());
            assertTrue(missing.getMessage().contains("not available on this controller (404"), missing.getMessage());
            fake.then("POST /proxy/network/api/s/default/list/alarm", answer(400, "{\"meta\":{\"rc\":\"error\",\"msg\":\"api.err.InvalidObject\"},\"data\":[]}").build());
            var invalid = assertThrows(UnifiScanner.ApiException.class, () -> client.post("/api/s/default/list/alarm", JSON.createObjectNode()));
            assertTrue(invalid.getMessage().contains("api.err.InvalidObject"), invalid.getMessage());
            assertEquals(1, fake.logins.get());
            assertEquals(1, fake.requests("GET", "/proxy/network/api/s/default/stat/event").size(), "404 is not retried");
        }

        @Test
        void aStaleCsrfTokenIsNotMistakenForAnExpiredSession() {
            var client = client(Map.of());
            client.connect();
            fake.csrf = "changed-behind-our-back";
            var e = assertThrows(UnifiScanner.AuthException.class, () -> client.post("/api/s/default/stat/sysinfo", JSON.createObjectNode()));
            assertTrue(e.getMessage().contains("CSRF"), e.getMessage());
            assertEquals(1, fake.logins.get(), "a 403 never re-logs in");
        }
    }

    @Nested
    class Retries extends WithController {
        @Test
        void a503IsRetriedWithOneWarnLinePerRetry() {
            fake.then("GET /proxy/network/api/self/sites", answer(503, "<html>Service Unavailable</html>").build(), answer(502, "").build());
            Run r = test();
            assertEquals(0, r.code(), r.err());
            List<String> warns = r.err().lines().filter(l -> l.contains(" WARN ")).toList();
            assertEquals(2, warns.size(), r.err());
            assertTrue(warns.get(0).contains("GET /proxy/network/api/self/sites failed: HTTP 503; retry 1 of 3 in "), warns.get(0));
            assertTrue(warns.get(1).contains("HTTP 502; retry 2 of 3 in "), warns.get(1));
        }

        @Test
        void aResetConnectionIsRetried() {
            // The JDK's client silently repeats a GET once when the connection drops, so drop it twice.
            MockResponse drop = new MockResponse.Builder().onResponseStart(new SocketEffect.CloseSocket(true, false, false)).build();
            fake.then("GET /proxy/network/api/self/sites", drop, drop);
            Run r = test();
            assertEquals(0, r.code(), r.err());
            assertTrue(r.err().contains("retry 1 of 3"), r.err());
        }

        @Test
        void aTimeoutIsRetried() {
            env.put("UNIFI_CONNECT_TIMEOUT", "0.2s"); // a request may take 0.6s
            fake.then("GET /proxy/network/api/self/sites", answer(200, "{\"meta\":{\"rc\":\"ok\"},\"data\":[]}").headersDelay(3, TimeUnit.SECONDS).build());
            Run r = test();
            assertEquals(0, r.code(), r.err());
            assertTrue(r.err().contains("failed: timed out waiting for an answer; retry 1 of 3"), r.err());
        }

        @Test
        void retryAfterIsHonoured() {
            fake.then("GET /proxy/network/api/self/sites", answer(429, "{}").addHeader("Retry-After", "1").build());
            long started = System.nanoTime();
            Run r = test();
            long tookMs = (System.nanoTime() - started) / 1_000_000;
            assertEquals(0, r.code(), r.err());
            assertTrue(r.err().contains("HTTP 429; retry 1 of 3 in 1s"), r.err());
            assertTrue(tookMs >= 1_000, "waited " + tookMs + " ms");
        }

        @Test
        void retryAfterReadsSecondsAndHttpDatesAndIsClampedToFiveMinutes() {
            Instant now = Instant.parse("2026-12-04T12:00:00Z");
            assertEquals(Optional.of(Duration.ofSeconds(7)), UnifiScanner.Retry.retryAfter("7", now));
            String date = DateTimeFormatter.RFC_1123_DATE_TIME.format(ZonedDateTime.of(2026, 12, 4, 12, 0, 30, 0, ZoneOffset.UTC));
            assertEquals(Optional.of(Duration.ofSeconds(30)), UnifiScanner.Retry.retryAfter(date, now));
            assertEquals(Optional.of(Duration.ofMinutes(5)), UnifiScanner.Retry.retryAfter("86400", now));
            assertEquals(Optional.of(Duration.ZERO), UnifiScanner.Retry.retryAfter("Thu, 01 Jan 2026 00:00:00 GMT", now));
            assertEquals(Optional.empty(), UnifiScanner.Retry.retryAfter("soon", now));
        }

        @Test
        void backoffDoublesFromTheInitialDelayToTheMaxWithJitter() {
            Duration one = Duration.ofSeconds(1), max = Duration.ofSeconds(60);
            assertEquals(Duration.ofMillis(1000), UnifiScanner.Retry.backoff(one, max, 1, 0.5));
            assertEquals(Duration.ofMillis(2000), UnifiScanner.Retry.backoff(one, max, 2, 0.5));
            assertEquals(Duration.ofMillis(4000), UnifiScanner.Retry.backoff(one, max, 3, 0.5));
            assertEquals(Duration.ofMillis(3200), UnifiScanner.Retry.backoff(one, max, 3, 0.0), "jitter down to 80%");
            assertEquals(Duration.ofMillis(4800), UnifiScanner.Retry.backoff(one, max, 3, 1.0), "jitter up to 120%");
            assertEquals(Duration.ofSeconds(60), UnifiScanner.Retry.backoff(one, max, 7, 1.0), "never above the max");
            assertEquals(Duration.ofMillis(48000), UnifiScanner.Retry.backoff(one, max, 12, 0.0));
        }

        @Test
        void whenRetriesRunOutTheLastCauseIsNamedAndTheExitIs2() {
            MockResponse busy = answer(503, "").build();
            fake.then("GET /proxy/network/api/self/sites", busy, busy, busy, busy);
            Run r = test();
            assertEquals(2, r.code());
            assertTrue(r.err().contains("GET /proxy/network/api/self/sites answered 503 after 3 retries"), r.err());
        }

        @Test
        void a400AndA403AreNotRetried() {
            var client = client(Map.of());
            client.connect();
            fake.then("GET /proxy/network/api/s/default/stat/health", answer(400, "{\"meta\":{\"rc\":\"error\",\"msg\":\"api.err.InvalidArgs\"},\"data\":[]}").build());
            assertThrows(UnifiScanner.ApiException.class, () -> client.get("/api/s/default/stat/health"));
            fake.then("GET /proxy/network/api/s/default/stat/device", answer(403, "{\"message\":\"Forbidden\"}").build());
            var e = assertThrows(UnifiScanner.AuthException.class, () -> client.get("/api/s/default/stat/device"));
            assertTrue(e.getMessage().contains("lacks permission"), e.getMessage());
            assertEquals(1, fake.requests("GET", "/proxy/network/api/s/default/stat/health").size());
            assertEquals(1, fake.requests("GET", "/proxy/network/api/s/default/stat/device").size());
        }

        @Test
        void connectionRefusedEndsInExit2AfterRetries() throws Exception {
            env.put("UNIFI_PORT", String.valueOf(freePort()));
            Run r = test();
            assertEquals(2, r.code());
            assertEquals(3, r.err().lines().filter(l -> l.contains("failed: connection refused; retry")).count(), r.err());
            assertTrue(r.err().contains("failed after 3 retries: connection refused"), r.err());
        }
    }

    @Nested
    class BadAnswers extends WithController {
        @Test
        void htmlInsteadOfJsonIsAProtocolErrorNamingThePathAndTheStartOfTheBody() {
            fake.then("GET /proxy/network/api/self/sites", answer(200, "<html><head><title>Hotel WiFi — please sign in</title></head><body>" + "x".repeat(200) + "</body></html>").build());
            Run r = test();
            assertEquals(2, r.code());
            List<String> errors = r.err().lines().filter(l -> l.startsWith("unifi-scanner: ")).toList();
            assertEquals(1, errors.size(), r.err());
            String line = errors.get(0);
            assertTrue(line.contains("GET /proxy/network/api/self/sites did not answer JSON (HTTP 200)"), line);
            String first80 = ("<html><head><title>Hotel WiFi — please sign in</title></head><body>" + "x".repeat(200)).substring(0, 80);
            assertTrue(line.contains("'" + first80 + "…'"), line);
            assertFalse(r.err().contains("Exception") || r.err().contains("\tat "), "no stack trace or exception names: " + r.err());
        }

        @Test
        void anErrorEnvelopeWithStatus200IsAnError() {
            fake.then("GET /proxy/network/api/s/default/stat/sysinfo", answer(200, "{\"meta\":{\"rc\":\"error\",\"msg\":\"api.err.ServerBusy\"},\"data\":[]}").build());
            Run r = test();
            assertEquals(2, r.code());
            assertTrue(r.err().contains("stat/sysinfo answered an error: api.err.ServerBusy"), r.err());
        }

        @Test
        void answersAreReadWithASizeCap() {
            var client = client(Map.of());
            client.connect();
            client.maxResponseBytes = 4096;
            fake.then("GET /proxy/network/api/s/default/stat/device", answer(200, "{\"meta\":{\"rc\":\"ok\"},\"data\":[\"" + "x".repeat(10_000) + "\"]}").build());
            var e = assertThrows(UnifiScanner.ConnectionException.class, () -> client.get("/api/s/default/stat/device"));
            assertTrue(e.getMessage().contains("larger than"), e.getMessage());
        }
    }

    // =====================================================================================
    // Sites, TLS, banner
    // =====================================================================================

    @Nested
    class Sites extends WithController {
        @Test
        void theOnlySiteIsUsedWhenNoneIsSet() {
            Run r = test();
            assertEquals(0, r.code(), r.err());
            assertTrue(r.out().contains("Site: default (Default)"), r.out());
        }

        @Test
        void severalSitesAndNoneSetListsThem() {
            fake.sites = List.of(new Site("default", "Default"), new Site("x7k2p9", "Branch Office"));
            Run r = test();
            assertEquals(1, r.code());
            assertTrue(r.err().contains("set UNIFI_SITE to one of: default (Default), x7k2p9 (Branch Office)"), r.err());
        }

        @Test
        void aSiteMatchesItsDescriptionCaseInsensitively() {
            fake.sites = List.of(new Site("default", "Default"), new Site("x7k2p9", "Branch Office"));
            env.put("UNIFI_SITE", "branch office");
            Run r = test();
            assertEquals(0, r.code(), r.err());
            assertEquals(1, fake.requests("GET", "/proxy/network/api/s/x7k2p9/stat/sysinfo").size());
        }

        @Test
        void anUnknownSiteExits1ListingTheSites() {
            env.put("UNIFI_SITE", "Warehouse");
            Run r = test();
            assertEquals(1, r.code());
            assertTrue(r.err().contains("no site 'Warehouse' on the controller; set UNIFI_SITE to one of: default (Default)"), r.err());
            assertEquals(1, fake.logouts.get(), "logged out even though the run failed");
        }
    }

    @Nested
    class Tls extends WithController {
        @Test
        void aPinnedFingerprintIsAcceptedWhateverTheCertificatesName() {
            Run r = test(); // the certificate is for unifi.local; we connect to 127.0.0.1
            assertEquals(0, r.code(), r.err());
            assertTrue(r.out().contains("Certificate: " + CONSOLE_PIN), r.out());
        }

        @Test
        void aPinInColonlessLowercaseFormWorksToo() {
            env.put("UNIFI_CERT_FINGERPRINT", CONSOLE_PIN.replace(":", "").toLowerCase().replace("sha256", "sha256:"));
            assertEquals(0, test().code());
        }

        @Test
        void aMismatchedPinIsRefusedShowingBothFingerprints() {
            String other = new HeldCertificate.Builder().commonName("unifi.local").build().certificate() == null ? "" :
                    UnifiScanner.Tls.fingerprint(new HeldCertificate.Builder().commonName("unifi.local").build().certificate());
            env.put("UNIFI_CERT_FINGERPRINT", other);
            Run r = test();
            assertEquals(2, r.code());
            assertTrue(r.err().contains(CONSOLE_PIN) && r.err().contains(other), r.err());
            assertTrue(r.err().contains("does not match UNIFI_CERT_FINGERPRINT"), r.err());
            assertEquals(0, fake.requests.size(), "nothing is sent over a refused connection");
        }

        @Test
        void anUnverifiableCertificateIsExplainedWithItsFingerprintAndBothWaysOut() {
            env.remove("UNIFI_CERT_FINGERPRINT");
            Run r = test();
            assertEquals(2, r.code());
            assertTrue(r.err().contains("could not be verified"), r.err());
            assertTrue(r.err().contains("UNIFI_CERT_FINGERPRINT=" + CONSOLE_PIN + " (secure)"), r.err());
            assertTrue(r.err().contains("UNIFI_VERIFY_SSL=false (insecure)"), r.err());
            assertEquals(1, r.err().lines().count(), "one line: " + r.err());
        }

        @Test
        void aCertificateFromATrustedAuthorityForTheRightNameIsVerified() throws Exception {
            HeldCertificate ca = new HeldCertificate.Builder().certificateAuthority(0).commonName("Test CA").build();
            HeldCertificate leaf = new HeldCertificate.Builder().commonName("localhost").addSubjectAlternativeName("localhost").signedBy(ca).build();
            server.close();
            server = new MockWebServer();
            server.useHttps(new HandshakeCertificates.Builder().heldCertificate(leaf, ca.certificate()).build().sslSocketFactory());
            server.setDispatcher(fake);
            server.start();
            KeyStore ks = KeyStore.getInstance(KeyStore.getDefaultType());
            ks.load(null, null);
            ks.setCertificateEntry("ca", ca.certificate());
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(ks);
            Map<String, String> e = new HashMap<>(env);
            e.remove("UNIFI_CERT_FINGERPRINT");
            e.put("UNIFI_PORT", String.valueOf(server.getPort()));
            e.put("UNIFI_HOST", "localhost");
            var client = new UnifiScanner.UnifiClient(config(e), new UnifiScanner.Log(new PrintStream(new ByteArrayOutputStream())),
                    (X509TrustManager) tmf.getTrustManagers()[0], List.of());
            client.connect();
            assertEquals("default", client.site().name());
            e.put("UNIFI_HOST", "127.0.0.1"); // same trusted CA, but the name does not match
            var wrongName = new UnifiScanner.UnifiClient(config(e), new UnifiScanner.Log(new PrintStream(new ByteArrayOutputStream())),
                    (X509TrustManager) tmf.getTrustManagers()[0], List.of());
            assertThrows(UnifiScanner.ConnectionException.class, wrongName::connect);
        }

        @Test
        void verifySslFalseConnectsToAnyCertificate() {
            env.remove("UNIFI_CERT_FINGERPRINT");
            env.put("UNIFI_VERIFY_SSL", "false");
            assertEquals(0, test().code());
        }
    }

    @Nested
    class TestMode extends WithController {
        @Test
        void testPrintsTheBannerSiteCertificateAndOk() {
            Run r = test();
            assertEquals(0, r.code(), r.err());
            List<String> lines = r.out().lines().toList();
            assertEquals("UniFi Scanner " + UnifiScanner.VERSION, lines.get(0));
            assertEquals("Controller: https://127.0.0.1:" + server.getPort() + " (UDMP) — UniFi OS console (UDMPRO), Network 7.4.162", lines.get(1));
            assertEquals("Auth: password (user 'scanner')", lines.get(2));
            assertEquals("Site: default (Default)", lines.get(3));
            assertEquals("Poll interval: 5m", lines.get(4));
            assertEquals("Certificate: " + CONSOLE_PIN, lines.get(5));
            assertEquals("Configuration and connection: OK", lines.get(6));
        }

        @Test
        void jsonLogFormatWritesOneObjectPerLine() throws Exception {
            env.put("UNIFI_LOG_FORMAT", "json");
            fake.then("GET /proxy/network/api/self/sites", answer(503, "").build());
            Run r = test();
            assertEquals(0, r.code());
            for (String line : r.err().lines().toList()) {
                JsonNode n = JSON.readTree(line);
                assertTrue(n.has("time") && n.has("level") && n.has("message"), line);
            }
            assertTrue(r.err().contains("\"level\":\"WARN\""), r.err());
        }
    }

    // =====================================================================================
    // Configuration
    // =====================================================================================

    @Nested
    class Configuration {
        Path dir;

        @BeforeEach
        void dir() throws IOException { dir = Files.createTempDirectory("unifi-scanner-config"); }

        Path file(String name, String content) throws IOException {
            Path p = dir.resolve(name);
            Files.writeString(p, content);
            return p;
        }

        @Test
        void optionsBeatEnvironmentBeatFileBeatDefaults() throws Exception {
            Path yaml = file("c.yaml", "host: file-host\nsite: file-site\nusername: file-user\nport: 1111\nmax-retries: 9\n");
            Map<String, String> env = Map.of("UNIFI_SITE", "env-site", "UNIFI_USERNAME", "env-user", "UNIFI_PASSWORD", "pw", "UNIFI_PORT", "2222");
            var c = UnifiScanner.ConfigLoader.load(Map.of("site", "cli-site"), yaml, env);
            assertEquals("cli-site", c.site());
            assertEquals("env-user", c.username());
            assertEquals(2222, c.port());
            assertEquals("file-host", c.host());
            assertEquals(9, c.maxRetries());
            assertEquals(Duration.ofSeconds(60), c.retryMaxDelay(), "default");
            assertTrue(c.verifySsl(), "verification is on by default");
        }

        @Test
        void configPathEnvironmentVariableNamesTheFile() throws Exception {
            Path yaml = file("c.yaml", "host: 10.0.0.1\napi_key: from-file\n");
            var c = UnifiScanner.ConfigLoader.load(Map.of(), null, Map.of("CONFIG_PATH", yaml.toString()));
            assertEquals("10.0.0.1", c.host());
            assertEquals("from-file", c.apiKey());
        }

        @Test
        void fileSecretsSupplyTheVariableWithoutTheTrailingNewline() throws Exception {
            Path secret = file("pw", "s3cret-from-file\n");
            var c = config(Map.of("UNIFI_HOST", "h", "UNIFI_USERNAME", "u", "UNIFI_PASSWORD_FILE", secret.toString()));
            assertEquals("s3cret-from-file", c.password());
        }

        @Test
        void anUnreadableSecretFileExits1WithoutItsContent() {
            Run r = cli(Map.of("UNIFI_HOST", "h", "UNIFI_USERNAME", "u", "UNIFI_PASSWORD_FILE", "/nonexistent/pw"), "--test");
            assertEquals(1, r.code());
            assertTrue(r.err().contains("cannot read UNIFI_PASSWORD_FILE '/nonexistent/pw'"), r.err());
        }

        @Test
        void hostMayBeAUrlWithAPort() {
            var c = config(Map.of("UNIFI_HOST", "https://unifi.example.net:8443/", "UNIFI_API_KEY", "k"));
            assertEquals("unifi.example.net", c.host());
            assertEquals(8443, c.port());
            var v6 = config(Map.of("UNIFI_HOST", "https://[fd00::1]:443", "UNIFI_API_KEY", "k"));
            assertEquals("fd00::1", v6.host());
        }

        @Test
        void durationsAcceptTheDocumentedForms() {
            assertEquals(Duration.ofSeconds(90), UnifiScanner.Durations.parse("90"));
            assertEquals(Duration.ofSeconds(90), UnifiScanner.Durations.parse("90s"));
            assertEquals(Duration.ofMinutes(5), UnifiScanner.Durations.parse("5m"));
            assertEquals(Duration.ofMillis(200), UnifiScanner.Durations.parse("0.2s"));
            assertEquals(Duration.ofMillis(250), UnifiScanner.Durations.parse("250ms"));
            assertThrows(IllegalArgumentException.class, () -> UnifiScanner.Durations.parse("5 minutes"));
        }

        @Test
        void everyValidationFailureIsOneLineAndExit1BeforeAnyTraffic() throws Exception {
            Map<String, String> ok = Map.of("UNIFI_HOST", "127.0.0.1", "UNIFI_USERNAME", "u", "UNIFI_PASSWORD", "pw");
            record Case(Map<String, String> env, String expected) {}
            List<Case> cases = List.of(
                    new Case(Map.of("UNIFI_USERNAME", "u", "UNIFI_PASSWORD", "pw"), "no controller address: set UNIFI_HOST"),
                    new Case(Map.of("UNIFI_HOST", "h"), "no credentials"),
                    new Case(with(ok, "UNIFI_PORT", "99999"), "port '99999' (from UNIFI_PORT) must be a whole number from 1 to 65535"),
                    new Case(with(ok, "UNIFI_CONNECT_TIMEOUT", "soon"), "connect-timeout 'soon' (from UNIFI_CONNECT_TIMEOUT) is not a duration"),
                    new Case(with(ok, "UNIFI_VERIFY_SSL", "maybe"), "verify-ssl 'maybe' (from UNIFI_VERIFY_SSL) must be true or false"),
                    new Case(with(ok, "UNIFI_CONTROLLER_TYPE", "cloud"), "must be auto, unifi-os or classic"),
                    new Case(with(ok, "UNIFI_CERT_FINGERPRINT", "sha256:abcd"), "must be a SHA-256 fingerprint"),
                    new Case(with(ok, "UNIFI_LOG_LEVEL", "loud"), "must be debug, info, warn or error"),
                    new Case(with(ok, "CONFIG_PATH", file("bad.yaml", "host: a\nport: 1\nsite: b: c\n").toString()), "line 3"),
                    new Case(with(ok, "CONFIG_PATH", file("typo.yaml", "host: a\nhots: b\n").toString()), "line 2: unknown key 'hots'"),
                    new Case(with(ok, "CONFIG_PATH", dir.resolve("missing.yaml").toString()), "cannot read config file"));
            for (Case c : cases) {
                Run r = cli(c.env(), "--test");
                assertEquals(1, r.code(), c.expected() + " → " + r.err());
                assertTrue(r.err().contains(c.expected()), "expected '" + c.expected() + "' in: " + r.err());
                assertEquals(1, r.err().lines().count(), "one line: " + r.err());
                assertTrue(r.out().isEmpty());
            }
        }

        @Test
        void usageErrorsExit1Not2AndDoNotEchoValues() {
            Run unknown = cli(Map.of(), "--pasword=hunter2-secret");
            assertEquals(1, unknown.code());
            assertTrue(unknown.err().contains("unknown option --pasword"), unknown.err());
            assertFalse(unknown.all().contains("hunter2-secret"));
            Run missing = cli(Map.of(), "--host");
            assertEquals(1, missing.code());
            assertTrue(missing.err().contains("option --host needs a value"), missing.err());
        }

        @Test
        void helpNamesTheExitCodesAndShowsNoSecretDefault() {
            Run r = cli(Map.of("UNIFI_PASSWORD", "env-secret-pw"), "--help");
            assertEquals(0, r.code());
            for (String s : List.of("0     success", "1     configuration", "2     connection", "3     authentication", "UNIFI_PASSWORD_FILE"))
                assertTrue(r.out().contains(s), s + " in help:\n" + r.out());
            assertFalse(r.out().contains("env-secret-pw"));
        }

        @Test
        void configToStringHidesSecrets() {
            var c = config(Map.of("UNIFI_HOST", "h", "UNIFI_USERNAME", "u", "UNIFI_PASSWORD", "pw-x1y2z3", "UNIFI_API_KEY", "key-a1b2c3"));
            assertFalse(c.toString().contains("pw-x1y2z3"));
            assertFalse(c.toString().contains("key-a1b2c3"));
        }

        static Map<String, String> with(Map<String, String> base, String k, String v) {
            Map<String, String> m = new HashMap<>(base);
            m.put(k, v);
            return m;
        }
    }

    // =====================================================================================
    // Secrets never leave
    // =====================================================================================

    @Nested
    class Secrets extends WithController {
        @Test
        void debugLoggingOfASuccessfulRunWithRetriesAndReloginShowsNoSecret() {
            env.put("UNIFI_LOG_LEVEL", "debug");
            fake.then("GET /proxy/network/api/self/sites", answer(401, "").build(), answer(503, "").build());
            fake.rotatedCsrf = "csrf-rotated-secret-42";
            Run r = test();
            assertEquals(0, r.code(), r.err());
            assertTrue(r.err().contains(" DEBUG "), "debug logging was on");
            for (String secret : List.of(PASSWORD, "session-1", "session-2", "csrf-token-1", "csrf-token-2", "csrf-rotated-secret-42"))
                assertFalse(r.all().contains(secret), "leaked " + secret + ":\n" + r.all());
        }

        @Test
        void failuresAndApiKeysShowNoSecretEither() {
            env.put("UNIFI_LOG_LEVEL", "debug");
            env.put("UNIFI_PASSWORD", "wrong-" + PASSWORD);
            Run bad = test();
            assertEquals(3, bad.code());
            assertFalse(bad.all().contains(PASSWORD), bad.all());
            fake.apiKey = "other";
            env.remove("UNIFI_PASSWORD");
            env.put("UNIFI_API_KEY", API_KEY);
            Run key = test();
            assertEquals(3, key.code());
            assertFalse(key.all().contains(API_KEY), key.all());
        }
    }

    // =====================================================================================
    // Health file and --health-check
    // =====================================================================================

    @Nested
    class Health extends WithController {
        @Test
        void startingDuringTheRunHealthyAfterIt() throws Exception {
            fake.healthFileToPeek = dir.resolve("health.json");
            assertEquals(0, test().code());
            assertEquals("starting", JSON.readTree(fake.healthAtLogin).path("status").asText());
            JsonNode h = health();
            assertEquals("healthy", h.path("status").asText());
            assertTrue(Duration.between(Instant.parse(h.path("timestamp").asText()), Instant.now()).abs().getSeconds() < 60);
            assertEquals("rw-r--r--", PosixFilePermissions.toString(Files.getPosixFilePermissions(dir.resolve("health.json"))));
            try (var files = Files.list(dir)) {
                assertEquals(List.of("health.json"), files.map(p -> p.getFileName().toString()).toList(), "no temp files left behind");
            }
        }

        @Test
        void unhealthyWithTheOneLineCauseAfterAFailureAndNoSecrets() throws Exception {
            env.put("UNIFI_PASSWORD", "wrong-pw-" + PASSWORD);
            assertEquals(3, test().code());
            JsonNode h = health();
            assertEquals("unhealthy", h.path("status").asText());
            assertTrue(h.path("details").path("error").asText().contains("rejected username 'scanner'"), h.toString());
            assertFalse(h.toString().contains(PASSWORD));
        }

        @Test
        void healthCheckIsHealthyOnlyWhenFreshAndHealthy() throws Exception {
            Map<String, String> hcEnv = Map.of("UNIFI_HEALTH_FILE", dir.resolve("health.json").toString(), "UNIFI_POLL_INTERVAL", "1m");
            Run missing = cli(hcEnv, "--health-check");
            assertEquals(1, missing.code());
            assertTrue(missing.err().contains("no health file"), missing.err());

            assertEquals(0, test().code());
            Run fresh = cli(hcEnv, "--health-check");
            assertEquals(0, fresh.code(), fresh.err());
            assertTrue(fresh.out().startsWith("healthy"), fresh.out());

            String old = Instant.now().minus(Duration.ofMinutes(3)).toString(); // limit: 2 × 1m + 60s = 3m
            Files.writeString(dir.resolve("health.json"), "{\"status\":\"healthy\",\"timestamp\":\"" + old + "\",\"details\":{}}");
            Run stale = cli(hcEnv, "--health-check");
            assertEquals(1, stale.code());
            assertTrue(stale.err().contains("stale") && stale.err().contains("limit 3m"), stale.err());

            Files.writeString(dir.resolve("health.json"), "{\"status\":\"unhealthy\",\"timestamp\":\"" + Instant.now() + "\",\"details\":{\"error\":\"boom\"}}");
            Run sick = cli(hcEnv, "--health-check");
            assertEquals(1, sick.code());
            assertTrue(sick.err().contains("unhealthy") && sick.err().contains("boom"), sick.err());
        }

        @Test
        void healthCheckNeedsNoOtherConfiguration() {
            Run r = cli(Map.of("UNIFI_HEALTH_FILE", dir.resolve("nothing-here").toString()), "--health-check");
            assertEquals(1, r.code());
            assertFalse(r.err().contains("UNIFI_HOST"), "no controller settings are needed: " + r.err());
        }
    }


    // =====================================================================================
    // The scan: collect, explain, report, remember — against the emulated controller over real HTTP
    // =====================================================================================

    static ObjectNode event(String id, Instant time, String key) {
        return JSON.createObjectNode().put("_id", id).put("key", key).put("time", time.toEpochMilli())
                .put("site_id", "5e231c10931eb902acf25112").put("subsystem", "lan");
    }

    /** Newest first, as the controller serves them. */
    static List<JsonNode> newestFirst(List<? extends JsonNode> events) {
        List<JsonNode> out = new ArrayList<>(events);
        out.sort(java.util.Comparator.comparingLong((JsonNode e) -> e.path("time").asLong()).reversed());
        return out;
    }

    abstract static class WithDemo {
        UnifiScanner.DemoController demo;
        Path dir;
        Map<String, String> env;

        @BeforeEach
        void dir() throws IOException { dir = Files.createTempDirectory("unifi-scanner-scan"); }

        @AfterEach
        void stop() {
            if (demo != null) demo.close();
            UnifiScanner.deleteTree(dir);
        }

        void start(UnifiScanner.DemoController.Dataset data, boolean network10) {
            demo = UnifiScanner.DemoController.start(data, network10);
            env = new HashMap<>(Map.of("UNIFI_HOST", demo.url(), "UNIFI_USERNAME", "demo", "UNIFI_PASSWORD", "demo-password",
                    "UNIFI_STATE_FILE", dir.resolve("state/state.json").toString(), "UNIFI_HEALTH_FILE", dir.resolve("health").toString(),
                    "UNIFI_RETRY_INITIAL_DELAY", "0.01s", "UNIFI_RETRY_MAX_DELAY", "0.05s"));
        }

        Run scan(String... args) { return cli(env, args); }

        JsonNode json(Run r) throws IOException {
            assertEquals(0, r.code(), r.err());
            return JSON.readTree(r.out());
        }

        List<String> requests(String contains) {
            synchronized (demo.requestLog) { return demo.requestLog.stream().filter(l -> l.contains(contains)).toList(); }
        }

        static UnifiScanner.DemoController.Dataset dataset(List<? extends JsonNode> events) {
            return new UnifiScanner.DemoController.Dataset(new ArrayList<>(newestFirst(events)), List.of(), List.of(), List.of(), List.of());
        }
    }

    @Nested
    class Collecting extends WithDemo {
        @Test
        void v1EventsArePaginatedPast3000() throws Exception {
            start(UnifiScanner.DemoController.synthetic(Instant.now(), 7_000), false);
            JsonNode report = json(scan("--format", "json", "--always"));
            assertEquals(7_000, report.path("stats").path("eventsRead").asInt());
            List<String> pages = requests("/stat/event");
            assertEquals(3, pages.size(), pages.toString());
            assertTrue(pages.get(0).contains("\"_start\":0") && pages.get(1).contains("\"_start\":3000") && pages.get(2).contains("\"_start\":6000"), pages.toString());
            assertTrue(pages.get(0).contains("\"_sort\":\"-time\"") && pages.get(0).contains("\"_limit\":3000"));
        }

        @Test
        void network10FallsBackToTheSystemLogWithValidCategoriesAndPages() throws Exception {
            start(UnifiScanner.DemoController.synthetic(Instant.now(), 2_500), true);
            JsonNode report = json(scan("--format", "json", "--always"));
            assertEquals(2_500, report.path("stats").path("eventsRead").asInt());
            assertEquals(1, requests("/stat/event").size(), "v1 tried once, then the choice is kept");
            List<String> pages = requests("/system-log/all");
            assertEquals(3, pages.size(), pages.toString());
            for (String page : pages) {
                JsonNode body = JSON.readTree(page.substring(page.indexOf('{')));
                for (JsonNode c : body.path("categories")) assertTrue(UnifiScanner.Collector.V2_CATEGORIES.contains(c.asText()), c.asText());
                assertTrue(body.path("pageSize").asInt() <= 1000);
            }
            assertEquals("unavailable", report.path("sources").path("ips").asText());
            assertEquals("unavailable", report.path("sources").path("alarms").asText());
            assertEquals("ok", report.path("sources").path("events").asText());
        }

        @Test
        void aMissingSourceIsNotedNeverFatalAndNeverALogin() {
            start(UnifiScanner.DemoController.realisticDay(Instant.now()), true);
            Run r = scan("--always");
            assertEquals(0, r.code(), r.err());
            assertTrue(r.out().contains("IPS events: not available on this controller version"), r.out());
            assertEquals(1, demo.logins(), "a 404 or 400 never triggers a login");
            assertEquals(1, r.err().lines().filter(l -> l.contains(" INFO IPS events: not available on this controller version")).count(), r.err());
            Run again = scan();
            assertEquals("", again.out() + again.err(), "said once: the next quiet run prints nothing at all");
        }

        @Test
        void theRealisticDayThroughTheSystemLogStillExplainsTheDevices() throws Exception {
            start(UnifiScanner.DemoController.realisticDay(Instant.now()), true);
            JsonNode report = json(scan("--format", "json"));
            String titles = report.path("findings").toString();
            assertTrue(titles.contains("Garage AP keeps dropping off the network"), titles);
            assertTrue(titles.contains("Likely brute-force attack on the admin login from 203.0.113.45"), titles);
        }
    }

    @Nested
    class Normalizing {
        /** From unifi-samples/stat-event-records.json: an IPS alert in the event log (catname array, srcipGeo []). */
        static final String IPS_EVENT = """
                {"_id":"5ee9f7ca453d4e00f3c04b57","timestamp":1592391625,"src_ip":"192.168.1.199","src_port":50447,
                 "dest_ip":"54.36.1.2","dest_port":80,"proto":"TCP","srcipGeo":[],"dstipGeo":{"country_code":"FR"},"dstipCountry":"FR",
                 "catname":["emerging-malware"],"inner_alert_action":"allowed","inner_alert_signature_id":2003337,
                 "inner_alert_signature":"ET MALWARE Suspicious User Agent (Autoupdate)","inner_alert_category":"A Network Trojan was Detected",
                 "inner_alert_severity":1,"key":"EVT_IPS_IpsAlert","subsystem":"www","time":1592391625000,"datetime":"2020-06-17T11:00:25Z"}""";
        /** From unifi-samples/stat-ips-event-records.json: catname a string, *Geo false, country false, time only as seconds. */
        static final String IPS_RECORD = """
                {"_id":"5d2416c78f0385ccf1c6df44","archived":false,"timestamp":1562646211,"src_ip":"196.196.244.84","src_port":51413,
                 "dest_ip":"192.168.3.2","dest_port":36881,"proto":"UDP","srcipCountry":"SE","dstipCountry":false,"dstipGeo":false,
                 "srcipGeo":{"country_code":"SE"},"catname":"spamhaus","inner_alert_action":"allowed","inner_alert_signature_id":2400022,
                 "inner_alert_signature":"ET DROP Spamhaus DROP Listed Traffic Inbound group 23","inner_alert_category":"Misc Attack",
                 "inner_alert_severity":2,"key":"EVT_IPS_IpsAlert"}""";

        @Test
        void v1RecordsGiveTimeKeyDeviceClientAndMessage() throws Exception {
            JsonNode r = JSON.readTree("""
                    {"_id":"5ee9e56b453d4e00f3c04a7a","user":"d8:4c:90:9f:82:5a","ssid":"Extra Fast","hostname":"dns-ipp",
                     "ap":"74:83:c2:d4:11:3d","key":"EVT_WU_Disconnected","subsystem":"wlan","time":1592386923000,
                     "datetime":"2020-06-17T09:42:03Z","msg":"User[d8:4c:90:9f:82:5a] disconnected from \\"Extra Fast\\""}""");
            var e = UnifiScanner.Collector.v1Event("default", r, "event");
            assertEquals(Instant.ofEpochMilli(1592386923000L), e.time());
            assertEquals("EVT_WU_Disconnected", e.key());
            assertEquals("74:83:c2:d4:11:3d", e.deviceMac());
            assertEquals("dns-ipp", e.client());
            assertEquals("wlan", e.subsystem());
            assertEquals("5ee9e56b453d4e00f3c04a7a", e.id());
            assertTrue(e.message().startsWith("User[d8:4c:90:9f:82:5a] disconnected"));
        }

        @Test
        void switchAndGatewayNamesComeFromTheirOwnFields() throws Exception {
            var sw = UnifiScanner.Collector.v1Event("default", JSON.readTree(
                    "{\"_id\":\"a\",\"key\":\"EVT_SW_Lost_Contact\",\"sw\":\"22:22:00:22:22:00\",\"sw_name\":\"switch\",\"time\":1}"), "event");
            assertEquals("switch", sw.deviceName());
            var gw = UnifiScanner.Collector.v1Event("default", JSON.readTree(
                    "{\"_id\":\"b\",\"key\":\"EVT_GW_WANTransition\",\"gw\":\"22:22:00:22:22:01\",\"iface\":\"eth8\",\"state\":\"inactive\",\"time\":2}"), "event");
            assertEquals("22:22:00:22:22:01", gw.deviceMac());
            assertEquals("eth8", gw.field("iface"));
        }

        @Test
        void ipsQuirksAreHandled() throws Exception {
            var a = UnifiScanner.Collector.ipsAlert("default", JSON.readTree(IPS_RECORD));
            assertEquals(Instant.ofEpochSecond(1562646211L), a.time(), "timestamp in seconds when time is missing");
            assertEquals("SE", a.srcCountry());
            assertFalse(a.blocked());
            assertFalse(a.cybersecure());
            var b = UnifiScanner.Collector.ipsAlert("default", JSON.readTree(IPS_EVENT));
            assertEquals(Instant.ofEpochMilli(1592391625000L), b.time(), "ms time wins over seconds timestamp");
            assertEquals("", b.srcCountry(), "srcipGeo [] means unknown");
            assertTrue(UnifiScanner.Collector.ipsAlert("default", JSON.readTree(IPS_EVENT.replace("2003337", "2850123"))).cybersecure());
        }

        @Test
        void systemLogEntriesFillTheirPlaceholders() throws Exception {
            var e = UnifiScanner.Collector.v2Event("default", JSON.readTree("""
                    {"id":"6710","key":"EVT_AP_Lost_Contact","category":"UNIFI_DEVICES","severity":"HIGH","timestamp":1733300000000,
                     "message_raw":"{DEVICE} lost contact with {CLIENT}","title_raw":"Device Offline",
                     "parameters":{"DEVICE":{"id":"74:ac:b9:00:00:11","name":"Garage AP","model":"U6-Lite"},"CLIENT":{"id":"x","name":"tv-lounge"}}}"""));
            assertEquals("Garage AP lost contact with tv-lounge", e.message());
            assertEquals("Garage AP", e.deviceName());
            assertEquals("tv-lounge", e.client());
            assertEquals("HIGH", e.severityHint());
        }

        @Test
        void devicesReadStringFiguresTemperaturesAndPoe() throws Exception {
            var d = UnifiScanner.Collector.device("default", JSON.readTree("""
                    {"mac":"22:22:00:22:22:00","name":"switch","model":"US24P250","type":"usw","state":1,"adopted":true,"uptime":3188809,
                     "upgradable":false,"version":"4.0.42.10433","system-stats":{"cpu":"59.3","mem":"50.1","uptime":"3188809"},
                     "general_temperature":43,"overheating":false,"total_max_power":222,
                     "port_table":[{"port_idx":1,"poe_enable":false,"poe_power":"0.00"},{"port_idx":3,"poe_enable":true,"poe_power":"4.84"},
                                   {"port_idx":4,"poe_enable":true,"poe_power":"10.16"}]}"""));
            assertEquals(59.3, d.cpu());
            assertEquals(43.0, d.temperature());
            assertEquals(15.0, d.poeUsed(), 0.001);
            assertEquals(222.0, d.poeBudget());
            var ap = UnifiScanner.Collector.device("default", JSON.readTree("""
                    {"mac":"80:22:22:22:22:22","name":"wap-lower","model":"U7PG2","type":"uap","state":1,"has_temperature":false,
                     "temperatures":[{"name":"CPU","value":61.5},{"name":"PHY","value":48}]}"""));
            assertEquals(61.5, ap.temperature());
            assertNull(ap.cpu(), "missing figures stay missing");
        }

        @Test
        void malformedRecordsAreSkippedAndCounted() throws Exception {
            var data = WithDemo.dataset(List.of(event("good", Instant.now().minusSeconds(60), "EVT_SW_LoopDetected").put("sw", "aa:bb:cc:00:00:01"),
                    (ObjectNode) JSON.readTree("{\"_id\":\"nokey\",\"time\":" + Instant.now().minusSeconds(30).toEpochMilli() + "}"),
                    (ObjectNode) JSON.readTree("{\"_id\":\"blankkey\",\"key\":\" \",\"time\":" + Instant.now().minusSeconds(20).toEpochMilli() + "}")));
            try (var demo = UnifiScanner.DemoController.start(new UnifiScanner.DemoController.Dataset(
                    new ArrayList<>(List.of(data.events().get(1), data.events().get(0), data.events().get(2))), List.of(), List.of(), List.of(), List.of()), false)) {
                Path dir = Files.createTempDirectory("unifi-scanner-malformed");
                Run r = cli(Map.of("UNIFI_HOST", demo.url(), "UNIFI_USERNAME", "demo", "UNIFI_PASSWORD", "demo-password",
                        "UNIFI_STATE_FILE", dir.resolve("s.json").toString(), "UNIFI_HEALTH_FILE", dir.resolve("h").toString()), "--format", "json");
                assertEquals(0, r.code(), r.err());
                JsonNode report = JSON.readTree(r.out());
                assertEquals(2, report.path("stats").path("malformed").asInt());
                assertTrue(report.path("findings").toString().contains("network loop"));
                UnifiScanner.deleteTree(dir);
            }
        }
    }

    /** Streams events and alerts through the explainer as a scan does, then adds the device snapshot. */
    static UnifiScanner.Explained explainStream(UnifiScanner.Explainer explainer, List<UnifiScanner.Event> events,
                                          List<UnifiScanner.IpsAlert> alerts, List<UnifiScanner.Device> devices) {
        var acc = explainer.new Accumulator();
        events.forEach(acc::event);
        alerts.forEach(acc::ips);
        return acc.finish(devices, List.of());
    }

    @Nested
    class Explaining {
        final UnifiScanner.Explainer explainer = new UnifiScanner.Explainer(UnifiScanner.DEFAULT_THRESHOLDS, ZoneOffset.UTC);
        final Instant t0 = Instant.now().minus(Duration.ofHours(6));

        UnifiScanner.Explained explain(List<ObjectNode> records) {
            List<UnifiScanner.Event> events = new ArrayList<>();
            for (ObjectNode r : records) events.add(UnifiScanner.Collector.v1Event("default", r, "event"));
            events.sort(java.util.Comparator.comparing(UnifiScanner.Event::time));
            return explainStream(explainer, events, List.of(), List.of());
        }

        UnifiScanner.Finding only(UnifiScanner.Explained e) {
            assertEquals(1, e.findings().size(), e.findings().toString());
            return e.findings().get(0);
        }

        @Test
        void anApLostOnceIsMediumFiveTimesIsFlapping() {
            List<ObjectNode> lost = new ArrayList<>();
            for (int i = 0; i < 14; i++) lost.add(event("l" + i, t0.plus(Duration.ofMinutes(15L * i)), "EVT_AP_Lost_Contact").put("ap", "aa:00:00:00:00:11").put("ap_name", "Garage AP"));
            var once = only(explain(lost.subList(0, 1)));
            assertEquals(UnifiScanner.Severity.MEDIUM, once.severity());
            assertTrue(once.title().startsWith("Garage AP dropped off the network (at "), once.title());
            assertFalse(once.remediation().isEmpty());
            var flapping = only(explain(lost));
            assertEquals(UnifiScanner.Severity.SEVERE, flapping.severity());
            assertEquals(14, flapping.count());
            assertTrue(flapping.title().startsWith("Garage AP keeps dropping off the network — flapping (14 times, "), flapping.title());
            assertEquals(t0, flapping.firstSeen().truncatedTo(ChronoUnit.MILLIS).equals(t0.truncatedTo(ChronoUnit.MILLIS)) ? t0 : flapping.firstSeen());
            assertEquals(t0.plus(Duration.ofMinutes(195)).toEpochMilli(), flapping.lastSeen().toEpochMilli());
        }

        @Test
        void differentDevicesAreDifferentFindings() {
            var e = explain(List.of(event("a", t0, "EVT_AP_Lost_Contact").put("ap", "aa:00:00:00:00:11").put("ap_name", "Garage AP"),
                    event("b", t0, "EVT_AP_Lost_Contact").put("ap", "aa:00:00:00:00:12").put("ap_name", "Hall AP")));
            assertEquals(2, e.findings().size());
        }

        @Test
        void aWanThatWentDownAndCameBackIsAnOutageWithItsDuration() {
            var f = only(explain(List.of(
                    event("d", t0, "EVT_GW_WANTransition").put("gw", "aa:00:00:00:00:01").put("iface", "eth8").put("state", "inactive"),
                    event("u", t0.plus(Duration.ofMinutes(14)), "EVT_GW_WANTransition").put("gw", "aa:00:00:00:00:01").put("iface", "eth8").put("state", "active"))));
            assertEquals(UnifiScanner.Category.INTERNET, f.category());
            assertEquals(UnifiScanner.Severity.MEDIUM, f.severity());
            assertTrue(f.title().startsWith("Internet connection (eth8) was down for 14 min ("), f.title());
            var stillDown = only(explain(List.of(event("d", t0, "EVT_GW_WANTransition").put("gw", "aa:00:00:00:00:01").put("iface", "eth8").put("state", "inactive"))));
            assertEquals(UnifiScanner.Severity.SEVERE, stillDown.severity());
            assertTrue(stillDown.title().contains("has not come back"), stillDown.title());
        }

        @Test
        void fiveFailedLoginsFromOneAddressAreABruteForceAttempt() {
            List<ObjectNode> fails = new ArrayList<>();
            for (int i = 0; i < 5; i++) fails.add(event("f" + i, t0.plusSeconds(i), "EVT_AD_LoginFailed").put("ip", "203.0.113.45").put("admin", "admin"));
            fails.add(event("g", t0, "EVT_AD_LoginFailed").put("ip", "192.168.1.20").put("admin", "alex"));
            var e = explain(fails);
            assertEquals(2, e.findings().size());
            var brute = e.findings().get(0);
            assertEquals(UnifiScanner.Severity.SEVERE, brute.severity());
            assertTrue(brute.title().startsWith("Likely brute-force attack on the admin login from 203.0.113.45 (5 times"), brute.title());
            assertEquals(UnifiScanner.Severity.MEDIUM, e.findings().get(1).severity());
        }

        @Test
        void securityAndSwitchingRulesUseTheControllersRealKeys() {
            var e = explain(List.of(
                    event("r", t0, "EVT_SW_DetectRogueDHCP").put("sw", "aa:00:00:00:00:21").put("ip", "192.168.1.250").put("port", 7),
                    event("l", t0, "EVT_SW_LoopDetected").put("sw", "aa:00:00:00:00:21").put("sw_name", "Rack Switch"),
                    event("p", t0, "EVT_SW_PoeOverload").put("sw", "aa:00:00:00:00:21").put("sw_name", "Rack Switch"),
                    event("x", t0, "EVT_AP_RadarDetected").put("ap", "aa:00:00:00:00:11").put("ap_name", "Garage AP").put("radar_channel", "52")));
            Map<String, UnifiScanner.Severity> bySeverity = new HashMap<>();
            e.findings().forEach(f -> bySeverity.put(f.title().replaceAll(" \\(at .*", ""), f.severity()));
            assertEquals(UnifiScanner.Severity.SEVERE, bySeverity.get("A rogue DHCP server (192.168.1.250) is handing out addresses"), bySeverity.toString());
            assertEquals(UnifiScanner.Severity.SEVERE, bySeverity.get("A network loop was detected on Rack Switch"), bySeverity.toString());
            assertEquals(UnifiScanner.Severity.MEDIUM, bySeverity.get("Rack Switch ran out of PoE power"), bySeverity.toString());
            assertEquals(UnifiScanner.Severity.LOW, bySeverity.get("Garage AP heard radar and left channel 52"), bySeverity.toString());
            for (var f : e.findings()) {
                if (f.severity() != UnifiScanner.Severity.LOW) assertFalse(f.remediation().isEmpty(), f.title());
            }
        }

        @Test
        void everyRuleExplainsOnlyKeysFromTheReferenceNeverInventedOnes() {
            for (String invented : List.of("EVT_IPS_Alert", "EVT_AP_DISCONNECTED", "EVT_WAN_FAILOVER"))
                assertTrue(UnifiScanner.RULES.stream().noneMatch(r -> r.keys().matcher(invented).matches()), invented);
            for (var r : UnifiScanner.RULES) {
                assertFalse(r.title().isBlank());
                assertTrue(r.explanation().length() > 30, r.title());
                if (r.severity() != UnifiScanner.Severity.LOW) assertFalse(r.steps().isEmpty(), r.title());
            }
        }

        @Test
        void unknownKeysAreCountedNoiseIsActivity() {
            var e = explain(List.of(event("a", t0, "EVT_AP_Adopted"), event("b", t0, "EVT_AP_Adopted"), event("c", t0, "EVT_XG_Whatever"),
                    event("d", t0, "EVT_WU_Connected"), event("e", t0, "EVT_WU_Roam")));
            assertTrue(e.findings().isEmpty());
            assertEquals(Map.of("EVT_AP_Adopted", 2, "EVT_XG_Whatever", 1), e.unexplained());
            assertEquals(Map.of("EVT_WU_Connected", 1, "EVT_WU_Roam", 1), e.activity());
        }

        @Test
        void ipsGroupsBySignatureAllowedIsWorseThanBlocked() {
            List<UnifiScanner.IpsAlert> alerts = List.of(
                    new UnifiScanner.IpsAlert("default", t0, "1", 2003337, "ET MALWARE X", "A Network Trojan was Detected", "allowed", "192.168.1.57", "", "1.2.3.4", 80, "TCP", 1),
                    new UnifiScanner.IpsAlert("default", t0.plusSeconds(1), "2", 2003337, "ET MALWARE X", "A Network Trojan was Detected", "allowed", "192.168.1.57", "", "1.2.3.4", 80, "TCP", 1),
                    new UnifiScanner.IpsAlert("default", t0, "3", 2400022, "ET DROP Spamhaus", "Misc Attack", "blocked", "196.196.244.84", "SE", "192.168.1.2", 36881, "UDP", 2),
                    new UnifiScanner.IpsAlert("default", t0, "4", 2850001, "ETPRO TROJAN Y", "Misc Attack", "blocked", "10.0.0.9", "", "8.8.8.8", 53, "UDP", 1));
            var e = explainStream(explainer, List.of(), alerts, List.of());
            assertEquals(3, e.findings().size());
            var malware = e.findings().get(0);
            assertEquals(UnifiScanner.Severity.SEVERE, malware.severity());
            assertEquals(2, malware.count());
            assertTrue(malware.title().contains("detected but NOT blocked"), malware.title());
            assertTrue(malware.explanation().contains("may be infected with malware") && malware.explanation().contains("192.168.1.57 ×2"), malware.explanation());
            var pro = e.findings().stream().filter(f -> f.title().contains("ETPRO")).findFirst().orElseThrow();
            assertTrue(pro.title().contains("[Cybersecure]"), pro.title());
            assertEquals(UnifiScanner.Severity.MEDIUM, pro.severity());
            var spam = e.findings().stream().filter(f -> f.title().contains("Spamhaus")).findFirst().orElseThrow();
            assertEquals(UnifiScanner.Severity.LOW, spam.severity());
            assertTrue(spam.explanation().contains("196.196.244.84 (SE) ×1"), spam.explanation());
        }

        @Test
        void deviceHealthUsesTheThresholdTable() throws Exception {
            var hot = UnifiScanner.Collector.device("default", JSON.readTree(
                    "{\"mac\":\"aa:00:00:00:00:21\",\"name\":\"Rack Switch\",\"type\":\"usw\",\"state\":1,\"general_temperature\":74,\"uptime\":8640000,"
                            + "\"system-stats\":{\"cpu\":\"12\",\"mem\":\"98\"},\"upgradable\":true,\"version\":\"7.1.26\",\"upgrade_to_firmware\":\"7.2.1\"}"));
            var off = UnifiScanner.Collector.device("default", JSON.readTree("{\"mac\":\"aa:00:00:00:00:22\",\"name\":\"Office Switch\",\"state\":0,\"adopted\":true}"));
            var e = explainStream(explainer, List.of(), List.of(), List.of(hot, off));
            List<String> titles = e.findings().stream().map(f -> f.severity().word() + ": " + f.title()).toList();
            assertTrue(titles.contains("severe: Office Switch is offline"), titles.toString());
            assertTrue(titles.contains("medium: Rack Switch is running hot (74 °C)"), titles.toString());
            assertTrue(titles.contains("medium: Rack Switch is short of memory (98 %)"), titles.toString());
            assertTrue(titles.contains("low: Rack Switch: firmware update available (7.1.26 → 7.2.1)"), titles.toString());
            assertFalse(titles.toString().contains("CPU"), "12% CPU is fine");
            assertFalse(titles.toString().contains("running for"), "100 days of uptime is under the threshold");
            assertEquals(2, e.deviceHealth().size());
            assertFalse(e.deviceHealth().get(1).online());
            var coolerExplainer = new UnifiScanner.Explainer(UnifiScanner.ConfigLoader.thresholds(new UnifiScanner.Raw("temperature=75/90", "test")), ZoneOffset.UTC);
            var cooler = explainStream(coolerExplainer, List.of(), List.of(), List.of(hot));
            assertTrue(cooler.findings().stream().noneMatch(f -> f.title().contains("running hot")), "thresholds are configurable");
        }
    }

    @Nested
    class Reporting extends WithDemo {
        @Test
        void jsonReportHasEveryDocumentedField() throws Exception {
            start(UnifiScanner.DemoController.realisticDay(Instant.now()), false);
            JsonNode r = json(scan("--format", "json"));
            assertTrue(r.path("controller").path("url").asText().startsWith("http://127.0.0.1:"));
            assertEquals("UniFi OS console (UDMPRO)", r.path("controller").path("kind").asText());
            assertEquals("UDMPRO", r.path("controller").path("model").asText());
            assertEquals("9.0.114", r.path("controller").path("version").asText());
            assertEquals("default", r.path("site").asText());
            Instant from = Instant.parse(r.path("period").path("from").asText()), to = Instant.parse(r.path("period").path("to").asText());
            assertEquals(24, Duration.between(from, to).toHours(), "the first run looks back 24 hours");
            JsonNode flapping = null;
            for (JsonNode f : r.path("findings")) if (f.path("title").asText().startsWith("Garage AP keeps dropping off")) flapping = f;
            assertNotNull(flapping, r.path("findings").toString());
            assertEquals("severe", flapping.path("severity").asText());
            assertEquals("connectivity", flapping.path("category").asText());
            assertEquals(14, flapping.path("count").asInt());
            assertEquals("Garage AP", flapping.path("device").asText());
            assertEquals("EVT_AP_Lost_Contact", flapping.path("eventKeys").path(0).asText());
            assertTrue(flapping.path("remediation").size() >= 2);
            assertTrue(flapping.path("sampleMessages").path(0).asText().contains("was disconnected"));
            assertTrue(Instant.parse(flapping.path("firstSeen").asText()).isBefore(Instant.parse(flapping.path("lastSeen").asText())));
            assertEquals(5, r.path("deviceHealth").size());
            assertEquals("EVT_AP_Adopted", r.path("unexplained").path(0).path("key").asText());
            assertEquals(1, r.path("unexplained").path(0).path("count").asInt());
            for (String s : List.of("events", "alarms", "ips", "devices")) assertEquals("ok", r.path("sources").path(s).asText(), s);
            assertTrue(r.path("stats").path("eventsRead").asInt() > 250);
            assertEquals(0, r.path("stats").path("malformed").asInt());
            assertTrue(r.path("stats").path("requests").asInt() >= 8);
        }

        @Test
        void textReportListsSevereThenMediumThenLowWithStepsDevicesAndTheUnexplainedTail() {
            start(UnifiScanner.DemoController.realisticDay(Instant.now()), false);
            Run r = scan();
            assertEquals(0, r.code(), r.err());
            String out = r.out();
            int severe = out.indexOf("\nSEVERE\n"), medium = out.indexOf("\nMEDIUM\n"), low = out.indexOf("\nLOW\n");
            assertTrue(severe > 0 && medium > severe && low > medium, out);
            assertTrue(out.contains("What to do:\n       1. "), out);
            assertTrue(out.contains("Device health") && out.contains("Office Switch") && out.contains("OFFLINE"), out);
            assertTrue(out.contains("1 event of 1 kind we don't explain yet: EVT_AP_Adopted (1)"), out);
            assertFalse(out.contains("\u001b["), "no colour when stdout is not a terminal");
            assertTrue(r.err().startsWith(UnifiScanner.NAME + " " + UnifiScanner.VERSION), "the banner goes to stderr in scan mode: " + r.err());
        }

        @Test
        void htmlIsOneSelfContainedPageWithEscapedText() {
            ObjectNode hostile = event("h", Instant.now().minusSeconds(600), "EVT_SW_LoopDetected").put("sw", "aa:00:00:00:00:21")
                    .put("sw_name", "<b>Rack</b>").put("msg", "<script>alert('x')</script> & more");
            start(dataset(List.of(hostile)), false);
            Run r = scan("--format", "html");
            assertEquals(0, r.code(), r.err());
            String html = r.out();
            assertTrue(html.startsWith("<!DOCTYPE html>") && html.contains("<style>"), html);
            assertFalse(html.contains("<script>"), "no script tag survives");
            assertTrue(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"), html);
            assertTrue(html.contains("A network loop was detected on &lt;b&gt;Rack&lt;/b&gt;"), html);
            assertFalse(html.contains("src=\"http") || html.contains("href=\"http") || html.contains("<link"), "no external assets");
        }

        @Test
        void failOnExits4WhenAFindingIsAtOrAboveTheSeverity() {
            start(dataset(List.of(event("p", Instant.now().minusSeconds(60), "EVT_SW_PoeOverload").put("sw", "aa:00:00:00:00:21"))), false);
            assertEquals(0, scan("--fail-on", "severe").code(), "a medium finding does not fail --fail-on severe");
            demo.close();
            start(dataset(List.of(event("p", Instant.now().minusSeconds(60), "EVT_SW_PoeOverload").put("sw", "aa:00:00:00:00:21"))), false);
            env.put("UNIFI_STATE_FILE", dir.resolve("other/state.json").toString());
            Run r = scan("--fail-on", "medium");
            assertEquals(4, r.code(), r.err());
            assertTrue(r.out().contains("ran out of PoE power"));
            Run bad = scan("--fail-on", "critical");
            assertEquals(1, bad.code());
            assertTrue(bad.err().contains("--fail-on must be severe, medium or low"), bad.err());
        }
    }

    @Nested
    class Remembering extends WithDemo {
        @Test
        void aSecondRunReportsNothingAndPrintsNothing() {
            start(UnifiScanner.DemoController.realisticDay(Instant.now()), false);
            Run first = scan();
            assertEquals(0, first.code(), first.err());
            assertTrue(first.out().contains("SEVERE"));
            Run second = scan();
            assertEquals(0, second.code(), second.err());
            assertEquals("", second.out(), "quiet when nothing is new");
            assertEquals("", second.err(), "nothing on stderr either: cron mails only when there is news");
            Run always = scan("--always");
            assertTrue(always.out().contains("Summary: 2 severe"), "--always shows what is still wrong now:\n" + always.out());
            assertFalse(always.out().contains("flapping"), "but no event twice");
        }

        @Test
        void alwaysPrintsAnAllQuietReport() {
            start(dataset(List.of()), false);
            Run r = scan("--always");
            assertEquals(0, r.code(), r.err());
            assertTrue(r.out().contains("Summary: all quiet — nothing that needs you"), r.out());
            assertEquals("", scan().out());
        }

        @Test
        void eventsSharingAMillisecondAreNeitherLostNorRepeated() throws Exception {
            Instant t = Instant.now().minusSeconds(300).truncatedTo(ChronoUnit.MILLIS);
            List<JsonNode> events = new ArrayList<>(List.of(
                    event("a", t, "EVT_SW_LoopDetected").put("sw", "aa:00:00:00:00:01").put("sw_name", "Switch A"),
                    event("b", t, "EVT_SW_LoopDetected").put("sw", "aa:00:00:00:00:02").put("sw_name", "Switch B")));
            var data = new UnifiScanner.DemoController.Dataset(events, List.of(), List.of(), List.of(), List.of());
            start(data, false);
            Run first = scan("--format", "json");
            assertEquals(2, JSON.readTree(first.out()).path("findings").size(), first.out());
            // a third event lands in the same millisecond after the first run read the log
            events.add(0, event("c", t, "EVT_SW_LoopDetected").put("sw", "aa:00:00:00:00:03").put("sw_name", "Switch C"));
            Run second = scan("--format", "json");
            JsonNode findings = JSON.readTree(second.out()).path("findings");
            assertEquals(1, findings.size(), second.out());
            assertTrue(findings.path(0).path("title").asText().contains("Switch C"));
            assertEquals("", scan().out(), "and nothing the third time");
            JsonNode state = JSON.readTree(Files.readString(dir.resolve("state/state.json")));
            JsonNode cursor = state.path("cursors").elements().next();
            assertEquals(t.toString(), cursor.path("time").asText());
            assertEquals(3, cursor.path("idsAtTime").size());
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(dir.resolve("state/state.json"))));
        }

        @Test
        void aCorruptStateIsSetAsideWithAWarningAndTheRunStartsAfresh() throws Exception {
            start(dataset(List.of(event("a", Instant.now().minusSeconds(60), "EVT_SW_LoopDetected").put("sw", "aa:00:00:00:00:01"))), false);
            Files.createDirectories(dir.resolve("state"));
            Files.writeString(dir.resolve("state/state.json"), "{\"cursors\": {broken");
            Run r = scan();
            assertEquals(0, r.code(), r.err());
            assertTrue(r.err().contains("WARN") && r.err().contains("was unreadable; moved it to"), r.err());
            assertTrue(r.out().contains("network loop"));
            try (var files = Files.list(dir.resolve("state"))) {
                assertTrue(files.anyMatch(p -> p.getFileName().toString().startsWith("state.json.corrupt-")));
            }
            assertEquals("", scan().out(), "the new state works");
        }

        @Test
        void whenTheReportCannotBeWrittenTheStateDoesNotAdvance() throws Exception {
            start(dataset(List.of(event("a", Instant.now().minusSeconds(60), "EVT_SW_LoopDetected").put("sw", "aa:00:00:00:00:01"))), false);
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            PrintStream broken = new PrintStream(new java.io.OutputStream() {
                @Override public void write(int b) throws IOException { throw new IOException("disk full"); }
            }, true);
            int code = UnifiScanner.Cli.run(new String[0], env, broken, new PrintStream(err, true), null);
            assertEquals(2, code, err.toString());
            assertTrue(err.toString().contains("could not write the report"), err.toString());
            Run retry = scan();
            assertEquals(0, retry.code());
            assertTrue(retry.out().contains("network loop"), "the same findings come again: nothing lost");
        }

        @Test
        void aSecondConcurrentRunStopsAtOnce() throws Exception {
            start(dataset(List.of()), false);
            Path state = dir.resolve("state/state.json");
            try (var held = UnifiScanner.StateStore.open(state, new UnifiScanner.Log(new PrintStream(new ByteArrayOutputStream())))) {
                Run r = scan();
                assertEquals(5, r.code());
                assertTrue(r.err().contains("another unifi-scanner run is still in progress"), r.err());
                assertTrue(demo.requestLog.isEmpty(), "no traffic at all");
            }
            assertEquals(0, scan().code(), "the lock is released with its holder");
        }

        @Test
        void theSessionIsReusedUntilTheControllerRejectsIt() throws Exception {
            start(UnifiScanner.DemoController.realisticDay(Instant.now()), false);
            assertEquals(0, scan().code());
            assertEquals(0, scan().code());
            assertEquals(0, scan().code());
            assertEquals(1, demo.logins(), "three runs, one login");
            assertTrue(requests("/api/auth/logout").isEmpty(), "the kept session is not logged out");
            Path session = dir.resolve("state/session.json");
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(session)));
            assertFalse(Files.readString(session).contains("demo-password"), "never the password");
            demo.expireSessions();
            Run afterExpiry = scan("--always");
            assertEquals(0, afterExpiry.code(), afterExpiry.err());
            assertEquals(2, demo.logins(), "a rejected session falls back to one login");
            Run noCache = scan("--no-session-cache");
            assertEquals(0, noCache.code());
            assertEquals(3, demo.logins());
            assertEquals(1, requests("/api/auth/logout").size(), "without the cache the run logs out");
        }

        @Test
        void allSitesAreScannedEachWithItsOwnCursor() throws Exception {
            start(dataset(List.of(event("a", Instant.now().minusSeconds(60), "EVT_SW_LoopDetected").put("sw", "aa:00:00:00:00:01").put("sw_name", "Core"))), false);
            demo.sites.put("x7k2p9", "Branch Office");
            Run severalNoneSet = scan();
            assertEquals(1, severalNoneSet.code());
            assertTrue(severalNoneSet.err().contains("set UNIFI_SITE to one of: "), severalNoneSet.err());
            env.put("UNIFI_SITE", "all");
            JsonNode r = json(scan("--format", "json"));
            assertEquals("all", r.path("site").asText());
            Set<String> sites = new java.util.TreeSet<>();
            r.path("findings").forEach(f -> sites.add(f.path("site").asText()));
            assertEquals(Set.of("default", "x7k2p9"), sites);
            JsonNode cursors = JSON.readTree(Files.readString(dir.resolve("state/state.json"))).path("cursors");
            assertEquals(2, cursors.size(), cursors.toString());
            assertEquals("", scan().out(), "nothing twice, on any site");
        }

        @Test
        void theFirstRunLooksBackTheConfiguredHours() throws Exception {
            start(dataset(List.of(event("old", Instant.now().minus(Duration.ofHours(30)), "EVT_SW_LoopDetected").put("sw", "aa:00:00:00:00:01"))), false);
            assertEquals(0, JSON.readTree(scan("--format", "json", "--always").out()).path("findings").size(), "30 h ago is outside the default 24 h");
            env.put("UNIFI_STATE_FILE", dir.resolve("fresh/state.json").toString());
            env.put("UNIFI_INITIAL_LOOKBACK_HOURS", "48");
            assertEquals(1, JSON.readTree(scan("--format", "json").out()).path("findings").size());
        }
    }


    // =====================================================================================
    // Operations: daemon, delivery channels
    // =====================================================================================

    @Nested
    class Daemon extends WithDemo {
        @Test
        void pollsAreTimedFromTheStartOfThePreviousPollAndMissedTicksAreSkipped() {
            Instant t0 = Instant.parse("2026-12-04T12:00:00Z");
            Duration five = Duration.ofMinutes(5);
            assertEquals(t0.plus(five), UnifiScanner.Daemon.nextPoll(t0, five, t0.plusSeconds(20), 0), "a 20 s poll does not push the next one back");
            assertEquals(t0.plus(Duration.ofMinutes(15)), UnifiScanner.Daemon.nextPoll(t0, five, t0.plus(Duration.ofMinutes(12)), 0), "a 12 min poll skips two ticks");
            assertEquals(t0.plus(five), UnifiScanner.Daemon.nextPoll(t0, five, t0.plusSeconds(1), 1), "the first failure waits one interval");
            assertEquals(t0.plus(Duration.ofMinutes(20)), UnifiScanner.Daemon.nextPoll(t0, five, t0.plusSeconds(1), 3), "then 2, 4 …");
            assertEquals(t0.plus(Duration.ofMinutes(40)), UnifiScanner.Daemon.nextPoll(t0, five, t0.plusSeconds(1), 9), "… up to 8 intervals");
        }

        UnifiScanner.Daemon daemon(Duration interval, ByteArrayOutputStream logs) {
            var config = config(env);
            var log = new UnifiScanner.Log(new PrintStream(logs, true));
            var options = new UnifiScanner.ScanOptions(UnifiScanner.Format.TEXT, false, null, false, false);
            var scan = new UnifiScanner.Scan(config, options, log, new PrintStream(logs, true), UnifiScanner.Channels.of(config, options, System.out, log, true));
            return new UnifiScanner.Daemon(scan, config, interval, log);
        }

        @Test
        void severalPollsShareOneLoginAndAFailedPollDoesNotStopTheDaemon() throws Exception {
            start(UnifiScanner.DemoController.realisticDay(Instant.now()), false);
            env.put("UNIFI_SITE", "warehouse"); // not there yet: the first polls fail
            ByteArrayOutputStream logs = new ByteArrayOutputStream();
            var d = daemon(Duration.ofMillis(150), logs);
            var client = new UnifiScanner.UnifiClient(config(env), new UnifiScanner.Log(new PrintStream(new ByteArrayOutputStream())));
            var health = new UnifiScanner.HealthFile(dir.resolve("health"), new UnifiScanner.Log(new PrintStream(new ByteArrayOutputStream())));
            ExecutorService pool = Executors.newSingleThreadExecutor();
            try {
                Future<Integer> running = pool.submit(() -> d.run(client, health));
                waitFor(() -> logs.toString().contains("poll failed: no site 'warehouse'"), "a failed poll");
                assertEquals("unhealthy", JSON.readTree(Files.readString(dir.resolve("health"))).path("status").asText());
                demo.sites.put("warehouse", "Warehouse");
                waitFor(() -> requests("/api/s/warehouse/stat/device").size() >= 2, "two successful polls");
                assertEquals("healthy", JSON.readTree(Files.readString(dir.resolve("health"))).path("status").asText());
                assertFalse(running.isDone(), "still running");
                d.stop();
                assertEquals(0, running.get(10, TimeUnit.SECONDS));
            } finally {
                pool.shutdownNow();
            }
            assertEquals(1, demo.logins(), "one login for all polls");
            assertTrue(logs.toString().contains("INFO report: [UniFi] "), "the daemon logs each report:\n" + logs);
            assertTrue(logs.toString().contains("INFO severe: Garage AP keeps dropping off the network"), logs.toString());
            assertEquals(1, logs.toString().lines().filter(l -> l.contains("INFO report:")).count(), "nothing new, nothing logged the second time");
        }

        @Test
        void aTooShortIntervalIsRefused() {
            start(dataset(List.of()), false);
            env.put("UNIFI_POLL_INTERVAL", "20s");
            Run r = scan("--daemon");
            assertEquals(1, r.code());
            assertTrue(r.err().contains("too short for --daemon: at least 1m"), r.err());
        }

        @Test
        void sigtermStopsTheDaemonLogsOutRemovesTheHealthFileAndExits143() throws Exception {
            start(UnifiScanner.DemoController.realisticDay(Instant.now()), false);
            env.put("UNIFI_POLL_INTERVAL", "1m");
            ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-cp", System.getProperty("java.class.path"), "UnifiScanner", "--daemon");
            pb.environment().keySet().removeIf(k -> k.startsWith("UNIFI_") || k.equals("CONFIG_PATH"));
            pb.environment().putAll(env);
            Path output = dir.resolve("daemon-output.txt");
            pb.redirectErrorStream(true).redirectOutput(output.toFile());
            Process p = pb.start();
            try {
                waitFor(() -> Files.exists(dir.resolve("health")) && Files.readString(dir.resolve("health")).contains("\"healthy\""), "a healthy poll");
                assertEquals(0, new ProcessBuilder("kill", "-TERM", String.valueOf(p.pid())).start().waitFor());
                assertTrue(p.waitFor(20, TimeUnit.SECONDS), "exited");
                assertEquals(143, p.exitValue(), Files.readString(output));
                assertFalse(Files.exists(dir.resolve("health")), "health file removed");
                assertEquals(1, requests("/api/auth/logout").size(), "logged out");
                assertTrue(Files.readString(output).contains("daemon stopped"), Files.readString(output));
            } finally {
                p.destroyForcibly();
            }
        }
    }

    interface Check { boolean ok() throws Exception; }

    static void waitFor(Check check, String what) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (System.nanoTime() < deadline) {
            if (check.ok()) return;
            Thread.sleep(25);
        }
        fail("timed out waiting for " + what);
    }

    @Nested
    class Delivering extends WithDemo {
        ObjectNode loop() { return event("loop", Instant.now().minusSeconds(120), "EVT_SW_LoopDetected").put("sw", "aa:00:00:00:00:21").put("sw_name", "Rack Switch"); }

        @Test
        void reportFilesAreWrittenInEachFormatAndOnlyOurOldFilesArePruned() throws Exception {
            start(dataset(List.of(loop())), false);
            Path reports = dir.resolve("reports");
            Files.createDirectories(reports);
            Path oldOurs = Files.writeString(reports.resolve("unifi-report-default-20250101T000000Z.txt"), "old");
            Path oldTheirs = Files.writeString(reports.resolve("notes.txt"), "keep me");
            Path recentOurs = Files.writeString(reports.resolve("unifi-report-default-20261201T000000Z.json"), "{}");
            for (Path p : List.of(oldOurs, oldTheirs)) Files.setLastModifiedTime(p, java.nio.file.attribute.FileTime.from(Instant.now().minus(Duration.ofDays(40))));
            env.put("UNIFI_REPORT_DIR", reports.toString());
            Run r = scan();
            assertEquals(0, r.code(), r.err());
            List<String> names;
            try (var files = Files.list(reports)) { names = files.map(p -> p.getFileName().toString()).sorted().toList(); }
            assertFalse(names.contains(oldOurs.getFileName().toString()), "our 40-day-old report is gone: " + names);
            assertTrue(names.contains("notes.txt") && names.contains(recentOurs.getFileName().toString()), names.toString());
            for (String ext : List.of("txt", "html", "json")) {
                String name = names.stream().filter(n -> n.matches("unifi-report-default-\\d{8}T\\d{6}Z\\." + ext) && !n.equals(recentOurs.getFileName().toString())).findFirst().orElseThrow(() -> new AssertionError(ext + " in " + names));
                String content = Files.readString(reports.resolve(name));
                assertTrue(content.contains("network loop"), name);
            }
            assertTrue(r.out().contains("network loop"), "stdout still gets it in one-shot mode");
        }

        @Test
        void aFailedChannelLeavesTheCursorSoTheSameFindingsComeAgain() throws Exception {
            start(dataset(List.of(loop())), false);
            Path notADir = Files.writeString(dir.resolve("a-file"), "x");
            env.put("UNIFI_REPORT_DIR", notADir.resolve("reports").toString());
            Run failed = scan();
            assertEquals(2, failed.code());
            assertTrue(failed.err().contains("could not write the report into") && failed.err().contains("UNIFI_REPORT_DIR"), failed.err());
            assertEquals(1, failed.err().lines().filter(l -> l.startsWith("unifi-scanner:")).count(), failed.err());
            env.put("UNIFI_REPORT_DIR", dir.resolve("reports").toString());
            Run again = scan();
            assertEquals(0, again.code(), again.err());
            assertTrue(again.out().contains("network loop"), "not lost");
        }

        @Test
        void webhookGetsTheJsonReportAndRetriesA5xxButNotA4xx() throws Exception {
            start(dataset(List.of(loop())), false);
            try (MockWebServer hook = new MockWebServer()) {
                hook.enqueue(answer(503, "busy").build());
                hook.enqueue(answer(200, "ok").build());
                hook.start();
                env.put("UNIFI_WEBHOOK_URL", hook.url("/hooks/T0KEN-s3cret").toString());
                Run r = scan();
                assertEquals(0, r.code(), r.err());
                assertEquals(2, hook.getRequestCount(), "the 503 was retried");
                hook.takeRequest();
                RecordedRequest delivered = hook.takeRequest();
                JsonNode body = JSON.readTree(delivered.getBody().utf8());
                assertTrue(body.path("findings").path(0).path("title").asText().contains("network loop"), body.toString());
                assertEquals("application/json", delivered.getHeaders().get("Content-Type"));
                assertFalse(r.all().contains("T0KEN-s3cret"), "the webhook URL is a secret");
            }
        }

        @Test
        void aWebhook4xxIsNotRetriedAndIsOneLine() throws Exception {
            start(dataset(List.of(loop())), false);
            try (MockWebServer hook = new MockWebServer()) {
                hook.enqueue(answer(400, "{\"error\":\"invalid_payload\"}").build());
                hook.start();
                env.put("UNIFI_WEBHOOK_URL", hook.url("/hooks/T0KEN-s3cret").toString());
                Run r = scan();
                assertEquals(2, r.code());
                assertEquals(1, hook.getRequestCount());
                assertTrue(r.err().contains("the webhook (UNIFI_WEBHOOK_URL) answered HTTP 400"), r.err());
                assertFalse(r.all().contains("T0KEN-s3cret"));
            }
        }

        @Test
        void slackDiscordAndNtfyGetTheirOwnShapes() throws Exception {
            start(dataset(List.of(loop())), false);
            try (MockWebServer hook = new MockWebServer()) {
                for (int i = 0; i < 3; i++) hook.enqueue(answer(200, "ok").build());
                hook.start();
                env.put("UNIFI_WEBHOOK_URL", hook.url("/hook").toString());
                env.put("UNIFI_WEBHOOK_FORMAT", "slack");
                assertEquals(0, scan("--always").code());
                JsonNode slack = JSON.readTree(hook.takeRequest().getBody().utf8());
                assertTrue(slack.path("text").asText().startsWith("1 severe — default (Default) — "), slack.toString());
                assertTrue(slack.path("text").asText().contains("• SEVERE: A network loop was detected on Rack Switch"), slack.toString());
                env.put("UNIFI_WEBHOOK_FORMAT", "discord");
                env.put("UNIFI_STATE_FILE", dir.resolve("discord/state.json").toString());
                assertEquals(0, scan("--always").code());
                JsonNode discord = JSON.readTree(hook.takeRequest().getBody().utf8());
                assertTrue(discord.path("content").asText().contains("network loop") && discord.path("content").asText().length() <= 2000);
                env.put("UNIFI_WEBHOOK_FORMAT", "ntfy");
                env.put("UNIFI_STATE_FILE", dir.resolve("ntfy/state.json").toString());
                assertEquals(0, scan("--always").code());
                RecordedRequest ntfy = hook.takeRequest();
                assertEquals("5", ntfy.getHeaders().get("Priority"));
                assertTrue(ntfy.getHeaders().get("Title").startsWith("[UniFi] 1 severe"), ntfy.getHeaders().get("Title"));
                assertTrue(ntfy.getBody().utf8().contains("network loop"));
            }
        }

        @Test
        void mailIsMultipartTextAndHtmlToEveryRecipient() throws Exception {
            start(dataset(List.of(loop())), false);
            var greenMail = new com.icegreen.greenmail.util.GreenMail(new com.icegreen.greenmail.util.ServerSetup(0, "127.0.0.1", "smtp"));
            greenMail.start();
            try {
                greenMail.setUser("scanner@example.net", "scanner", "mail-s3cret");
                env.putAll(Map.of("UNIFI_SMTP_HOST", "127.0.0.1", "UNIFI_SMTP_PORT", String.valueOf(greenMail.getSmtp().getPort()), "UNIFI_SMTP_TLS", "none",
                        "UNIFI_SMTP_USERNAME", "scanner", "UNIFI_SMTP_PASSWORD", "mail-s3cret",
                        "UNIFI_EMAIL_FROM", "scanner@example.net", "UNIFI_EMAIL_TO", "ops@example.net, alex@example.net"));
                Run r = scan();
                assertEquals(0, r.code(), r.err());
                assertTrue(greenMail.waitForIncomingEmail(10_000, 2));
                var messages = greenMail.getReceivedMessages();
                assertEquals(2, messages.length, "one delivery per recipient");
                var m = messages[0];
                assertEquals("[UniFi] 1 severe — default (Default) — " + java.time.LocalDate.now(ZoneOffset.UTC), m.getSubject());
                assertEquals("scanner@example.net", m.getFrom()[0].toString());
                assertEquals("ops@example.net, alex@example.net", m.getHeader("To", ", "));
                var multipart = (jakarta.mail.internet.MimeMultipart) m.getContent();
                assertTrue(multipart.getContentType().startsWith("multipart/alternative"));
                assertTrue(multipart.getBodyPart(0).isMimeType("text/plain") && multipart.getBodyPart(0).getContent().toString().contains("network loop"));
                assertTrue(multipart.getBodyPart(1).isMimeType("text/html") && multipart.getBodyPart(1).getContent().toString().contains("<!DOCTYPE html>"));
                assertFalse(r.all().contains("mail-s3cret"));
            } finally {
                greenMail.stop();
            }
        }

        @Test
        void mailOverImplicitTlsIsVerifiedAgainstTheServersCertificate() throws Exception {
            start(dataset(List.of(loop())), false);
            // the mail server's own certificate, for 127.0.0.1, as GreenMail's keystore
            HeldCertificate mailCert = new HeldCertificate.Builder().commonName("127.0.0.1").addSubjectAlternativeName("127.0.0.1").rsa2048().build();
            KeyStore serverKeys = KeyStore.getInstance("PKCS12");
            serverKeys.load(null, null);
            serverKeys.setKeyEntry("greenmail", mailCert.keyPair().getPrivate(), "changeit".toCharArray(), new java.security.cert.Certificate[]{mailCert.certificate()});
            Path keystore = dir.resolve("mail.p12");
            try (var outStream = Files.newOutputStream(keystore)) { serverKeys.store(outStream, "changeit".toCharArray()); }
            System.setProperty("greenmail.tls.keystore.file", keystore.toString());
            System.setProperty("greenmail.tls.keystore.password", "changeit");
            System.setProperty("greenmail.tls.key.password", "changeit");
            var greenMail = new com.icegreen.greenmail.util.GreenMail(new com.icegreen.greenmail.util.ServerSetup(0, "127.0.0.1", "smtps"));
            greenMail.start();
            try {
                env.putAll(Map.of("UNIFI_SMTP_HOST", "127.0.0.1", "UNIFI_SMTP_PORT", String.valueOf(greenMail.getSmtps().getPort()), "UNIFI_SMTP_TLS", "implicit",
                        "UNIFI_EMAIL_FROM", "scanner@example.net", "UNIFI_EMAIL_TO", "ops@example.net", "UNIFI_MAX_RETRIES", "0"));
                Run untrusted = scan();
                assertEquals(2, untrusted.code(), "GreenMail's self-signed certificate is not trusted by default");
                assertTrue(untrusted.err().contains("TLS failed"), untrusted.err());
                // the real channel, with the server's certificate trusted
                var config = config(env);
                var log = new UnifiScanner.Log(new PrintStream(new ByteArrayOutputStream()));
                var email = new UnifiScanner.Email(config.delivery().smtp(), config, log);
                KeyStore trusted = KeyStore.getInstance(KeyStore.getDefaultType());
                trusted.load(null, null);
                trusted.setCertificateEntry("mail", mailCert.certificate());
                TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
                tmf.init(trusted);
                javax.net.ssl.SSLContext ctx = javax.net.ssl.SSLContext.getInstance("TLS");
                ctx.init(null, tmf.getTrustManagers(), null);
                email.socketFactory = ctx.getSocketFactory();
                var report = new UnifiScanner.Report("https://unifi", "classic Network application", null, "9.0.114", "default", "Default",
                        Instant.now().minusSeconds(60), Instant.now(), new UnifiScanner.Explained(List.of(), List.of(), Map.of(), Map.of()),
                        Map.of(), Map.of(), 0, 0, 0, 0, ZoneOffset.UTC);
                email.deliver(report);
                assertTrue(greenMail.waitForIncomingEmail(10_000, 1));
                assertEquals("[UniFi] all quiet — Default — " + java.time.LocalDate.now(ZoneOffset.UTC), greenMail.getReceivedMessages()[0].getSubject());
            } finally {
                greenMail.stop();
            }
        }
    }

    @Nested
    class Demo {
        @Test
        void demoScansTheEmulatedControllerEndToEndAndTouchesNoUserState() throws Exception {
            Path home = Files.createTempDirectory("unifi-scanner-home");
            try {
                Run r = cli(Map.of("XDG_STATE_HOME", home.toString(), "HOME", home.toString()), "--demo");
                assertEquals(0, r.code(), r.err());
                for (String expected : List.of("Garage AP keeps dropping off the network — flapping (14 times",
                        "Internet connection (eth8) was down for 14 min", "A rogue DHCP server (192.168.1.250) is handing out addresses",
                        "Intrusion prevention: ET MALWARE Suspicious User Agent (Autoupdate) — detected but NOT blocked",
                        "Likely brute-force attack on the admin login from 203.0.113.45", "Rack Switch is running hot (83 °C)",
                        "Office Switch is offline", "Everyday activity (normal, not a problem):"))
                    assertTrue(r.out().contains(expected), expected + " in:\n" + r.out());
                try (var files = Files.list(home)) {
                    assertEquals(0, files.count(), "the demo keeps its state to itself");
                }
            } finally {
                UnifiScanner.deleteTree(home);
            }
        }
    }

    // =====================================================================================
    // Signals: a real process, SIGTERM in the middle of a run
    // =====================================================================================

    @Nested
    class Signals extends WithController {
        @Test
        void sigtermRemovesTheHealthFileLogsOutAndExits143() throws Exception {
            interruptMidRun("TERM", 143);
        }

        @Test
        void sigintRemovesTheHealthFileLogsOutAndExits130() throws Exception {
            interruptMidRun("INT", 130);
        }

        void interruptMidRun(String signal, int expectedExit) throws Exception {
            fake.stallSysinfo = new CountDownLatch(1);
            ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-cp", System.getProperty("java.class.path"), "UnifiScanner", "--test");
            pb.environment().keySet().removeIf(k -> k.startsWith("UNIFI_") || k.equals("CONFIG_PATH"));
            pb.environment().putAll(env);
            pb.redirectErrorStream(true);
            Path output = dir.resolve("process-output.txt");
            pb.redirectOutput(output.toFile());
            Process p = pb.start();
            try {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (fake.requests("GET", "/proxy/network/api/s/default/stat/sysinfo").isEmpty() && System.nanoTime() < deadline) Thread.sleep(20);
                assertFalse(fake.requests("GET", "/proxy/network/api/s/default/stat/sysinfo").isEmpty(), "the run reached sysinfo");
                assertTrue(Files.exists(dir.resolve("health.json")));
                assertEquals(0, new ProcessBuilder("kill", "-" + signal, String.valueOf(p.pid())).start().waitFor());
                assertTrue(p.waitFor(20, TimeUnit.SECONDS), "exited");
                assertEquals(expectedExit, p.exitValue(), Files.readString(output));
                assertFalse(Files.exists(dir.resolve("health.json")), "health file removed");
                assertEquals(1, fake.logouts.get(), "logged out on the way out");
            } finally {
                fake.stallSysinfo.countDown();
                p.destroyForcibly();
            }
        }
    }
}
