package main

import (
	"context"
	"fmt"
	"io"

	"github.com/banyan-live/banyan/bench"
	"github.com/banyan-live/banyan/overlay"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, "Usage: banyan bench swarm|tracker [flags]\n\nRuns a benchmark and prints one JSON object on stdout with --json;\nprogress goes to stderr. 'banyan bench tracker --help' lists its flags.\n")
		return errHelp
	}
	switch args[0] {
	case "tracker":
		return runBenchTracker(ctx, args[1:], stdout, stderr)
	case "swarm":
		return fmt.Errorf("bench swarm: %w", notYet("the swarm benchmark"))
	}
	return usageError{fmt.Sprintf("banyan bench: unknown benchmark %q: swarm or tracker", args[0])}
}

func runBenchTracker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var peers, stripes, conc int
	var ws, asJSON bool
	c := newCommand("bench tracker", "", "Measures the tracker: in-process overlay joins, leaves and assign latency at N peers,\nor with --ws, N real websocket clients joining over loopback.")
	c.Int(&peers, "peers", 100000, "peers to join (with --ws, default 2000 is sensible)")
	c.Int(&stripes, "stripes", 2, "stripes K")
	c.Bool(&ws, "ws", false, "join real websocket clients to a tracker on loopback")
	c.Int(&conc, "concurrency", 64, "with --ws: joins in flight")
	c.Bool(&asJSON, "json", false, "print one JSON object on stdout")
	if err := c.parse(args, stdout); err != nil {
		return err
	}
	var res any
	var err error
	if ws {
		res, err = bench.TrackerWS(ctx, bench.TrackerWSConfig{Peers: peers, Stripes: stripes, Concurrency: conc, Progress: stderr})
	} else {
		fmt.Fprintf(stderr, "bench tracker: building a %d-peer forest with K=%d, then churning 20%%\n", peers, stripes)
		res, err = overlay.Bench(overlay.BenchConfig{Peers: peers, Stripes: stripes})
	}
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, res)
	}
	fmt.Fprintf(stdout, "%+v\n", res)
	return nil
}
