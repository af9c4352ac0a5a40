package main

import (
	"context"
	"io"
	"os"
	"strconv"

	"github.com/banyan-live/banyan/bench"
)

// startNetnsBroadcast runs `banyan up` in this process for a netns swarm
// run, listening on host (the harness's bridge address) with real ICE
// (no --ice-loopback: the peers live in other namespaces), a throwaway
// data dir and the demo stream to publish to.
func startNetnsBroadcast(ctx context.Context, host string, stripes, rootCap int, stderr io.Writer) (*bench.Broadcast, error) {
	dir, err := os.MkdirTemp("", "banyan-bench-netns-")
	if err != nil {
		return nil, err
	}
	var o upOptions
	c := newCommand("up", "", "")
	o.register(c)
	if err := c.fs.Parse([]string{"--http", host + ":8080", "--rtmp", host + ":1935", "--turn", host + ":3478",
		"--public-host", host, "--turn-allow-private", "--data", dir,
		"--stripes", strconv.Itoa(stripes), "--root-capacity", strconv.Itoa(rootCap)}); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	log, err := newLogger(stderr, "warn")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	sys, err := startSystem(ctx, o, log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	base := host + ":" + portOf(sys.ln.Addr())
	return &bench.Broadcast{
		Stream:     o.DemoStream,
		TrackerURL: "ws://" + base + "/ws",
		OriginURL:  "http://" + base,
		PublishURL: "rtmp://" + host + ":" + portOf(sys.seed.RTMPAddr()) + "/live/" + sys.demoKey,
		SeederSent: func() uint64 { return sys.seed.RootSent(o.DemoStream) },
		Close: func() error {
			err := sys.Close()
			os.RemoveAll(dir)
			return err
		},
	}, nil
}
