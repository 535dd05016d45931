///usr/bin/env jbang "$0" "$@" ; exit $?
//JAVA 17+
//SOURCES ../UnifiScanner.java

import com.fasterxml.jackson.databind.JsonNode;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Benchmark: the scan against the emulated controller with 1 000, 10 000 and 100 000 events, each in a fresh JVM as a
 * user runs it, next to a JVM that merely downloads the same pages with the same client and no analysis.
 *   ./jbang bench/Bench.java            (sizes: 1000 10000 100000)
 *   ./jbang bench/Bench.java 5000       (one size)
 * Peak RSS comes from GNU time (/usr/bin/time) when present.
 */
public class Bench {
    /** The JVM options users get: those of UnifiScanner.java's //JAVA_OPTIONS line (BENCH_JVM overrides them). */
    static final List<String> JVM_OPTIONS = jvmOptions();

    static List<String> jvmOptions() {
        String opts = System.getenv("BENCH_JVM");
        if (opts == null) {
            try {
                opts = Files.readAllLines(Path.of("UnifiScanner.java")).stream().filter(l -> l.startsWith("//JAVA_OPTIONS "))
                        .map(l -> l.substring("//JAVA_OPTIONS ".length())).findFirst().orElse("");
            } catch (java.io.IOException e) {
                throw new IllegalStateException("run the benchmark from the project folder: ./jbang bench/Bench.java", e);
            }
        }
        return List.of(opts.trim().split("\\s+")).stream().filter(s -> !s.isBlank()).toList();
    }

    public static void main(String[] args) throws Exception {
        if (args.length > 0 && args[0].equals("download")) {
            download(args[1]);
            return;
        }
        List<Integer> sizes = new ArrayList<>();
        for (String a : args) sizes.add(Integer.parseInt(a));
        if (sizes.isEmpty()) sizes = List.of(1_000, 10_000, 100_000);
        boolean gnuTime = new File("/usr/bin/time").canExecute();
        System.out.printf("%-8s | %-28s | %-28s | %s%n", "events", "scan: wall  events/s  peakRSS", "download only: wall  peakRSS", "requests  bytes read  scan/download");
        for (int n : sizes) {
            try (var demo = UnifiScanner.DemoController.start(UnifiScanner.DemoController.synthetic(Instant.now(), n), false)) {
                Path dir = Files.createTempDirectory("unifi-bench");
                Run down = child(gnuTime, dir, List.of("Bench", "download", demo.url()), Map.of());
                Run scan = child(gnuTime, dir, List.of("UnifiScanner", "--format", "json", "--always", "--no-session-cache"), Map.of(
                        "UNIFI_HOST", demo.url(), "UNIFI_USERNAME", UnifiScanner.DemoController.USER, "UNIFI_PASSWORD", UnifiScanner.DemoController.PASSWORD,
                        "UNIFI_STATE_FILE", dir.resolve("state.json").toString(), "UNIFI_HEALTH_FILE", dir.resolve("health").toString()));
                JsonNode report = UnifiScanner.JSON.readTree(Files.readString(scan.stdout));
                int read = report.path("stats").path("eventsRead").asInt();
                if (read != n) throw new IllegalStateException("the scan read " + read + " events, expected " + n);
                System.out.printf("%-8d | %7.2fs %10.0f %9s | %14.2fs %10s | %8d %11s %10.2f×%n", n, scan.seconds, n / scan.seconds, scan.rss(),
                        down.seconds, down.rss(), report.path("stats").path("requests").asInt(), mib(report.path("stats").path("bytesRead").asLong()),
                        scan.seconds / down.seconds);
                UnifiScanner.deleteTree(dir);
            }
        }
    }

    record Run(double seconds, long rssKib, Path stdout) {
        String rss() { return rssKib < 0 ? "n/a" : String.format("%.0f MiB", rssKib / 1024.0); }
    }

    static String mib(long bytes) { return String.format("%.1f MiB", bytes / 1048576.0); }

    static Run child(boolean gnuTime, Path dir, List<String> mainAndArgs, Map<String, String> env) throws Exception {
        List<String> cmd = new ArrayList<>();
        Path rssFile = dir.resolve("rss-" + mainAndArgs.get(0) + ".txt"), out = dir.resolve("out-" + mainAndArgs.get(0) + ".txt");
        if (gnuTime) cmd.addAll(List.of("/usr/bin/time", "-f", "%M", "-o", rssFile.toString()));
        cmd.addAll(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        cmd.addAll(JVM_OPTIONS);
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path")));
        cmd.addAll(mainAndArgs);
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(ProcessBuilder.Redirect.INHERIT);
        pb.environment().keySet().removeIf(k -> k.startsWith("UNIFI_") || k.equals("CONFIG_PATH"));
        pb.environment().putAll(env);
        long start = System.nanoTime();
        int code = pb.start().waitFor();
        double seconds = (System.nanoTime() - start) / 1e9;
        if (code != 0) throw new IllegalStateException(mainAndArgs + " exited " + code);
        long rss = gnuTime ? Long.parseLong(Files.readAllLines(rssFile).get(Files.readAllLines(rssFile).size() - 1).trim()) : -1;
        return new Run(seconds, rss, out);
    }

    /** The same requests a scan makes for its events (login, sites, paged stat/event), with no analysis at all. */
    static void download(String url) {
        var config = UnifiScanner.ConfigLoader.load(Map.of("host", url, "username", UnifiScanner.DemoController.USER,
                "password", UnifiScanner.DemoController.PASSWORD), null, Map.of());
        var client = new UnifiScanner.UnifiClient(config, new UnifiScanner.Log(System.err));
        client.connect();
        long events = 0;
        for (int start = 0; ; start += UnifiScanner.Collector.V1_PAGE) {
            var body = UnifiScanner.JSON.createObjectNode().put("_sort", "-time").put("within", 25).put("_start", start).put("_limit", UnifiScanner.Collector.V1_PAGE);
            int got = UnifiScanner.UnifiClient.data(client.post("/api/s/default/stat/event", body)).size();
            events += got;
            if (got < UnifiScanner.Collector.V1_PAGE) break;
        }
        client.logout();
        System.out.println(events);
    }
}
