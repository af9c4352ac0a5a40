package turnserver

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary run a bare TURN server instead of the tests, so that
// BenchmarkRelay can measure the server's CPU time apart from the client's and the peer's.
const helperEnv = "BANYAN_TURNSERVER_BENCH_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(runHelperServer())
	}
	os.Exit(m.Run())
}

// runHelperServer serves until stdin closes; it prints "ADDR <udp addr>" once and answers
// each "cpu" line on stdin with its process CPU time in microseconds.
func runHelperServer() int {
	s, err := New(Config{
		UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", Secret: testSecret,
		AllowLoopback: true, MaxBandwidthBpsPerUser: -1, Logger: quietLogger(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)

		return 1
	}
	defer s.Close()
	fmt.Printf("ADDR %s\n", s.UDPAddr())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "cpu" {
			fmt.Printf("CPU %d\n", cpuMicros())
		}
	}

	return 0
}

// cpuMicros is this process's user+system CPU time.
func cpuMicros() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}

	return ru.Utime.Nano()/1000 + ru.Stime.Nano()/1000
}

// pump sends n packets of size bytes through relay to sink with at most window packets in
// flight (so the benchmark measures the relay, not socket-buffer overflow), and returns how
// many arrived. A window that makes no progress for 20 ms is written off as lost.
func pump(relay net.PacketConn, sink *udpPeer, n, size int) int64 {
	const window = 128
	payload := make([]byte, size)
	dst := sink.addr()
	base := sink.packets.Load()
	recv := func() int64 { return sink.packets.Load() - base }
	var lost int64
	wait := func(sent int64, limit int64) {
		last, stall := recv(), time.Now().Add(20*time.Millisecond)
		for sent-recv()-lost > limit {
			if r := recv(); r != last {
				last, stall = r, time.Now().Add(20*time.Millisecond)
			} else if time.Now().After(stall) {
				lost = sent - r

				return
			}
			time.Sleep(10 * time.Microsecond)
		}
	}
	for i := range n {
		if int64(i)-recv()-lost > window {
			wait(int64(i), window)
		}
		if _, err := relay.WriteTo(payload, dst); err != nil {
			return recv()
		}
	}
	wait(int64(n), 0)

	return recv()
}

// BenchmarkRelay measures the UDP relay on loopback:
//   - throughput (and throughput-bucket, with the bandwidth token bucket on): one client pumping 1200-byte datagrams through its relay to a peer;
//     reports offered MB/s, the delivered share, and the whole process's CPU time per
//     relayed megabit (client, server and peer together: an upper bound);
//   - server-cpu: the same against a server in a child process, reporting the server's
//     own CPU microseconds per relayed megabit (µs of CPU per second per Mbit/s);
//   - latency: ping-pong through the relay to an echo peer; ns/op is the relayed round
//     trip, added-µs-rtt the difference from the same ping-pong sent directly.
func BenchmarkRelay(b *testing.B) {
	const size = 1200
	for _, tc := range []struct {
		name string
		bps  int64
	}{
		{"throughput", -1},
		{"throughput-bucket", 10_000_000_000}, // token bucket on, never empty: its cost
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := newTestServer(b, func(c *Config) { c.MaxBandwidthBpsPerUser = tc.bps })
			sink := startPeer(b, false)
			relay := allocate(b, s.UDPAddr())
			pump(relay, sink, 256, size) // warm up: permission and channel bind
			b.SetBytes(size)
			b.ResetTimer()
			cpu0 := cpuMicros()
			got := pump(relay, sink, b.N, size)
			cpu := cpuMicros() - cpu0
			b.StopTimer()
			reportDelivery(b, got, size, cpu, "proc-cpu-µs/Mbit")
		})
	}
	b.Run("server-cpu", func(b *testing.B) {
		addr, cpuOf, stop := startHelper(b)
		defer stop()
		sink := startPeer(b, false)
		relay := allocate(b, addr)
		pump(relay, sink, 256, size)
		b.SetBytes(size)
		b.ResetTimer()
		cpu0 := cpuOf()
		got := pump(relay, sink, b.N, size)
		cpu := cpuOf() - cpu0
		b.StopTimer()
		reportDelivery(b, got, size, cpu, "server-cpu-µs/Mbit")
	})
	b.Run("latency", func(b *testing.B) {
		s := newTestServer(b, func(c *Config) { c.MaxBandwidthBpsPerUser = -1 })
		echo := startPeer(b, true)
		relay := allocate(b, s.UDPAddr())
		direct, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer direct.Close()
		msg := make([]byte, 200)
		buf := make([]byte, 2048)
		ping := func(c net.PacketConn) time.Duration {
			start := time.Now()
			if _, err := c.WriteTo(msg, echo.addr()); err != nil {
				b.Fatal(err)
			}
			if err := c.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
				b.Fatal(err)
			}
			if _, _, err := c.ReadFrom(buf); err != nil {
				b.Fatalf("ping lost: %v", err)
			}

			return time.Since(start)
		}
		median := func(c net.PacketConn, n int) time.Duration {
			d := make([]time.Duration, n)
			for i := range d {
				d[i] = ping(c)
			}
			slices.Sort(d)

			return d[n/2]
		}
		median(relay, 50) // warm up: permission and channel bind
		base := median(direct, 500)
		b.ResetTimer()
		rtts := make([]time.Duration, b.N)
		for i := range rtts {
			rtts[i] = ping(relay)
		}
		b.StopTimer()
		slices.Sort(rtts)
		p50 := rtts[len(rtts)/2]
		b.ReportMetric(float64(p50.Microseconds()), "p50-rtt-µs")
		b.ReportMetric(float64((p50 - base).Microseconds()), "added-µs-rtt")
		b.ReportMetric(float64(rtts[len(rtts)*99/100].Microseconds()), "p99-rtt-µs")
	})
}

func reportDelivery(b *testing.B, got int64, size int, cpuMicros int64, cpuUnit string) {
	b.Helper()
	b.ReportMetric(100*float64(got)/float64(b.N), "delivered-%")
	mbit := float64(got*int64(size)*8) / 1e6
	if mbit > 0 {
		b.ReportMetric(float64(cpuMicros)/mbit, cpuUnit)
		b.ReportMetric(mbit/b.Elapsed().Seconds(), "delivered-Mbit/s")
	}
}

// allocate opens a relay on the TURN server at addr with fresh credentials.
func allocate(b *testing.B, addr net.Addr) net.PacketConn {
	b.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	user, pass := goodCreds("bench")
	relay, err := newClient(b, conn, addr, user, pass).Allocate()
	if err != nil {
		b.Fatalf("Allocate: %v", err)
	}
	b.Cleanup(func() { _ = relay.Close() })

	return relay
}

// startHelper runs the test binary as a bare TURN server (see TestMain).
func startHelper(b *testing.B) (addr net.Addr, cpu func() int64, stop func()) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stop = func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	lines := bufio.NewScanner(stdout)
	readLine := func(prefix string) string {
		if !lines.Scan() || !strings.HasPrefix(lines.Text(), prefix) {
			stop()
			b.Fatalf("helper server: want %q line, got %q (%v)", prefix, lines.Text(), lines.Err())
		}

		return strings.TrimPrefix(lines.Text(), prefix)
	}
	udp, err := net.ResolveUDPAddr("udp4", readLine("ADDR "))
	if err != nil {
		stop()
		b.Fatal(err)
	}
	cpu = func() int64 {
		if _, err := fmt.Fprintln(stdin, "cpu"); err != nil {
			b.Fatal(err)
		}
		v, err := strconv.ParseInt(readLine("CPU "), 10, 64)
		if err != nil {
			b.Fatal(err)
		}

		return v
	}

	return udp, cpu, stop
}
