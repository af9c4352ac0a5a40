package main

import (
	"context"
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
