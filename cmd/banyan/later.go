package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

// The subcommands below document their flags now; their capabilities land
// with the tracker, seeder, TURN, peer and benchmark issues.

func runTracker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var http, data, level string
	c := newCommand("tracker", "", "Runs the tracker alone: websocket signaling at /ws, the overlay, the admin API and dashboard.")
	c.String(&http, "http", ":8080", "HTTP listen address")
	c.String(&data, "data", "./banyan-data", "data directory")
	c.String(&level, "log-level", "info", "log level")
	if err := c.parse(args, stdout); err != nil {
		return err
	}
	return notYet("the standalone tracker")
}

func runSeeder(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var http, rtmp, tracker, data, level string
	c := newCommand("seeder", "", "Runs a seeder alone: RTMP/WHIP ingest, CMAF packaging, origin HTTP and LL-HLS.")
	c.String(&http, "http", ":8081", "HTTP listen address (origin, WHIP, LL-HLS)")
	c.String(&rtmp, "rtmp", ":1935", "RTMP ingest listen address")
	c.String(&tracker, "tracker", "ws://127.0.0.1:8080/ws", "tracker signaling URL")
	c.String(&data, "data", "./banyan-data", "data directory")
	c.String(&level, "log-level", "info", "log level")
	if err := c.parse(args, stdout); err != nil {
		return err
	}
	return notYet("the standalone seeder")
}

func runTurn(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var addr, secret, realm, relayIP, level string
	c := newCommand("turn", "", "Runs the TURN relay alone, with short-lived credentials (coturn REST convention).")
	c.String(&addr, "turn", ":3478", "TURN listen address (UDP and TCP)")
	c.String(&secret, "turn-secret", "", "shared secret with the tracker")
	c.String(&realm, "realm", "banyan", "TURN realm")
	c.String(&relayIP, "relay-ip", "", "public IP address advertised for relayed candidates")
	c.String(&level, "log-level", "info", "log level")
	if err := c.parse(args, stdout); err != nil {
		return err
	}
	return notYet("the TURN relay")
}

func runPeer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var tracker, stream, record, level string
	var dur time.Duration
	var relay bool
	var capMbps float64
	c := newCommand("peer", "", "Runs a native peer: a headless viewer (optionally recording), or a relay edge.")
	c.String(&tracker, "tracker", "ws://127.0.0.1:8080/ws", "tracker signaling URL")
	c.String(&stream, "stream", "", "stream name to join")
	c.String(&record, "record", "", "write the verified, decrypted CMAF to this .mp4 file")
	c.Duration(&dur, "duration", 0, "leave after this long (0: until SIGINT/SIGTERM)")
	c.Bool(&relay, "relay", false, "run as a high-capacity relay edge")
	c.Float(&capMbps, "capacity-mbps", 0, "upload capacity to offer, in Mbit/s (0: measure)")
	c.String(&level, "log-level", "info", "log level")
	if err := c.parse(args, stdout); err != nil {
		return err
	}
	return notYet("the native peer")
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommand("bench", "swarm|tracker [flags]", "Runs benchmarks and prints one JSON object with --json.")
	if err := c.parse(args, stdout); err != nil {
		return err
	}
	if c.fs.NArg() == 0 {
		return usageError{"banyan bench: missing benchmark: swarm or tracker"}
	}
	return fmt.Errorf("benchmark %q: %w", c.fs.Arg(0), notYet("this benchmark"))
}
