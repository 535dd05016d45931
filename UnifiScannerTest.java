///usr/bin/env jbang "$0" "$@" ; exit $?
//JAVA 17+
//SOURCES UnifiScanner.java
//DEPS org.junit:junit-bom:5.14.4@pom
//DEPS org.junit.jupiter:junit-jupiter
//DEPS org.junit.platform:junit-platform-launcher
//DEPS com.squareup.okhttp3:mockwebserver3:5.3.2
//DEPS com.squareup.okhttp3:okhttp-tls:5.3.2

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
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
            assertEquals(Optional.of(Duration.ofSeconds(7)), UnifiScanner.UnifiClient.retryAfter("7", now));
            String date = DateTimeFormatter.RFC_1123_DATE_TIME.format(ZonedDateTime.of(2026, 12, 4, 12, 0, 30, 0, ZoneOffset.UTC));
            assertEquals(Optional.of(Duration.ofSeconds(30)), UnifiScanner.UnifiClient.retryAfter(date, now));
            assertEquals(Optional.of(Duration.ofMinutes(5)), UnifiScanner.UnifiClient.retryAfter("86400", now));
            assertEquals(Optional.of(Duration.ZERO), UnifiScanner.UnifiClient.retryAfter("Thu, 01 Jan 2026 00:00:00 GMT", now));
            assertEquals(Optional.empty(), UnifiScanner.UnifiClient.retryAfter("soon", now));
        }

        @Test
        void backoffDoublesFromTheInitialDelayToTheMaxWithJitter() {
            Duration one = Duration.ofSeconds(1), max = Duration.ofSeconds(60);
            assertEquals(Duration.ofMillis(1000), UnifiScanner.UnifiClient.backoff(one, max, 1, 0.5));
            assertEquals(Duration.ofMillis(2000), UnifiScanner.UnifiClient.backoff(one, max, 2, 0.5));
            assertEquals(Duration.ofMillis(4000), UnifiScanner.UnifiClient.backoff(one, max, 3, 0.5));
            assertEquals(Duration.ofMillis(3200), UnifiScanner.UnifiClient.backoff(one, max, 3, 0.0), "jitter down to 80%");
            assertEquals(Duration.ofMillis(4800), UnifiScanner.UnifiClient.backoff(one, max, 3, 1.0), "jitter up to 120%");
            assertEquals(Duration.ofSeconds(60), UnifiScanner.UnifiClient.backoff(one, max, 7, 1.0), "never above the max");
            assertEquals(Duration.ofMillis(48000), UnifiScanner.UnifiClient.backoff(one, max, 12, 0.0));
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
            assertEquals("Controller: https://127.0.0.1:" + server.getPort() + " — UniFi OS console (UDMPRO), Network 7.4.162", lines.get(1));
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
