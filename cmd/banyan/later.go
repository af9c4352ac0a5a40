package main

import (
	"context"
	"io"
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
