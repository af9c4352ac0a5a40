package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/banyan-live/banyan/bench"
	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/seeder"
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
		return runBenchSwarm(ctx, args[1:], stdout, stderr)
	}
	return usageError{fmt.Sprintf("banyan bench: unknown benchmark %q: swarm or tracker", args[0])}
}

func runBenchTracker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var peers, stripes, conc int
	var ws, asJSON bool
	c := newCommand("bench tracker", "", "Measures the tracker: in-process overlay joins, leaves and assign latency at N peers,\nor with --ws, N real websocket clients joining over loopback.")
	c.Int(&peers, "peers", 100000, "peers to join (with --ws, default 2000 is sensible)")
	c.Int(&stripes, "stripes", overlay.DefaultStripes, "stripes K")
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

func runBenchSwarm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		cfg                          bench.SwarmConfig
		churn, bitrate, profile      string
		cpuProfile, memProfile       string
		peersOut                     string
		netnsPeers                   []bench.NetnsPeer
		asJSON                       bool
		seed                         int
		duration, ramp, tick         time.Duration
		window, repair, playout, gap time.Duration
		gop                          time.Duration
	)
	c := newCommand("bench swarm", "", "Runs a swarm of viewers under one broadcast and measures offload, join time, latency per\ntree depth, stalls and re-parenting under churn. --transport mem simulates the network on a\nvirtual clock (peer/memnet: thousands of peers, per-link latency, loss and upload limits);\n--mode origin is the baseline where every viewer fetches from the origin over HTTP.")
	c.String(&cfg.Transport, "transport", bench.TransportMem, "mem (simulation), webrtc (real nodes on loopback) or netns (native peers in network namespaces; needs root)")
	c.String(&cfg.Mode, "mode", bench.ModeMesh, "mesh (peer-to-peer stripe forest) or origin (HTTP only: the baseline)")
	c.String(&cfg.Source, "source", "", "synthetic (sealed chunks at --bitrate; the mem default) or ffmpeg (a real encoder; the webrtc default)")
	c.Int(&cfg.Peers, "peers", 1000, "viewers (churn keeps the count)")
	c.Duration(&duration, "duration", time.Minute, "run length, ramp included (simulated time with mem)")
	c.Duration(&ramp, "ramp", 0, "spread the initial joins over this long (default min(10s, duration/4))")
	c.Int(&cfg.Stripes, "stripes", overlay.DefaultStripes, "stripe trees K")
	c.Int(&cfg.Mem.RootCapacity, "root-capacity", 0, "children the seeder feeds directly per stripe, as `banyan up --root-capacity` (default: as `banyan up`)")
	c.String(&bitrate, "bitrate", "3M", "stream bitrate (3M, 800k, ...)")
	c.String(&churn, "churn", "0", "viewers leaving (and as many joining) per minute: a count, or a share of --peers like 10%")
	c.String(&cfg.ChurnMode, "churn-mode", bench.ChurnAbrupt, "abrupt (vanish; the tracker notices) or clean (say goodbye)")
	c.Float(&cfg.Kill, "kill", 0, "share of viewers killed at once at mid-run (0.3 = 30%)")
	c.Int(&seed, "seed", 1, "random seed (mem runs are deterministic per seed)")
	c.Duration(&tick, "engine-tick", 0, "mem: how often each engine's Tick runs (default 50ms)")
	c.Duration(&gop, "gop", time.Second, fmt.Sprintf("mem: keyframe interval of the simulated stream, a multiple of the %v chunk (joiners start at the newest keyframe)", bench.ChunkDuration))
	c.Duration(&window, "window", 0, "mem: each engine's chunk window (default max(3s, gop+1s): a joiner's keyframe must still be in its parents' windows)")
	c.Duration(&repair, "repair-delay", 0, "mem: engines' RepairDelay (default: the engine's, 200ms)")
	c.Duration(&playout, "playout-delay", 0, "mem: engines' PlayoutDelay (default: the engine's, 1s)")
	c.Duration(&gap, "piece-gap", 0, "mem: engines' PieceGap (default: the engine's, 500ms)")
	c.Float(&cfg.Mem.Loss, "loss", 0, "mem: probability that a data channel message is lost (default 0.005)")
	c.Float(&cfg.Mem.Headroom, "headroom", 0, "mem (experiment): share of each viewer's measured uplink the tracker keeps free (default: the tracker's, 0.25)")
	c.Int(&cfg.Mem.NoUploadPct, "no-upload", 0, "mem: percent of viewers that cannot upload (default 20; 40 is the harsher mix)")
	c.Float(&cfg.Mem.UploadScale, "upload-scale", 1, "mem: multiply every upload and the origin's bandwidth (scale model: --bitrate 250k --upload-scale 0.0833 mimics 3M)")
	c.String(&profile, "engine", "default", "mem: viewer engine timings: default (the engine's) or tuned (gap 300ms, repair 1s, playout 2.5s); the three flags above override either")
	c.String(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	c.Bool(&cfg.Netns.Unlimited, "unlimited", false, "netns: no tbf on the viewers' uplinks (loss still applies)")
	c.String(&peersOut, "netns-peers", "", "netns: write every viewer's uplink limit and --json summary to this file (JSON)")
	c.String(&memProfile, "memprofile", "", "write a heap profile at the end of the run to this file")
	c.Bool(&asJSON, "json", false, "print one JSON object on stdout")
	if err := c.parse(args, stdout); err != nil {
		return err
	}
	var err error
	switch profile {
	case "default":
	case "tuned":
		cfg.Mem.Tune()
	default:
		return usageError{fmt.Sprintf("banyan bench swarm: --engine %q: default or tuned", profile)}
	}
	if cfg.Bitrate, err = bench.ParseBitrate(bitrate); err != nil {
		return usageError{"banyan bench swarm: " + err.Error()}
	}
	if cfg.ChurnPerMin, err = bench.ParseChurn(churn, cfg.Peers); err != nil {
		return usageError{"banyan bench swarm: " + err.Error()}
	}
	gopSet := false
	c.fs.Visit(func(f *flag.Flag) { gopSet = gopSet || f.Name == "gop" })
	if gopSet {
		if cfg.Transport != bench.TransportMem {
			return usageError{fmt.Sprintf("banyan bench swarm: --gop is for --transport mem only (the %s transport streams the real seeder's chunks, keyframes where its encoder put them)", cfg.Transport)}
		}
		if err := bench.ValidGOP(gop); err != nil {
			return usageError{"banyan bench swarm: --gop: " + err.Error()}
		}
		cfg.Mem.GOP = gop
	}
	cfg.Duration, cfg.Ramp, cfg.Seed = duration, ramp, uint64(seed)
	cfg.Mem.EngineTick, cfg.Mem.Window = tick, window
	for _, o := range []struct {
		dst *time.Duration
		v   time.Duration
	}{{&cfg.Mem.RepairDelay, repair}, {&cfg.Mem.PlayoutDelay, playout}, {&cfg.Mem.PieceGap, gap}} {
		if o.v != 0 {
			*o.dst = o.v
		}
	}
	cfg.Progress = stderr
	cfg.WebRTC.Start = func(ctx context.Context, bc bench.BroadcastConfig) (*bench.Broadcast, error) {
		return startBenchBroadcast(ctx, bc, stderr)
	}
	cfg.Netns.Start = func(ctx context.Context, host string, stripes, rootCap int) (*bench.Broadcast, error) {
		return startNetnsBroadcast(ctx, host, stripes, rootCap, stderr)
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return fmt.Errorf("bench swarm: cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench swarm: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if memProfile != "" {
		cfg.OnEnd = func() {
			if err := writeHeapProfile(memProfile); err != nil {
				fmt.Fprintf(stderr, "bench swarm: heap profile: %v\n", err)
			}
		}
	}
	if peersOut != "" {
		cfg.Netns.Peers = &netnsPeers
	}
	res, err := bench.Swarm(ctx, cfg)
	if peersOut != "" && netnsPeers != nil {
		b, jerr := json.MarshalIndent(netnsPeers, "", " ")
		if jerr == nil {
			jerr = os.WriteFile(peersOut, b, 0o644)
		}
		if jerr != nil {
			fmt.Fprintf(stderr, "bench swarm: --netns-peers: %v\n", jerr)
		}
	}
	if errors.Is(err, bench.ErrNotAvailable) {
		return err
	}
	if err != nil && res.Peers == 0 {
		return err
	}
	if asJSON {
		if werr := writeJSON(stdout, res); werr != nil {
			return werr
		}
	} else {
		fmt.Fprintf(stdout, "%+v\n", res)
	}
	return err
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// startBenchBroadcast runs `banyan up` in this process for a webrtc swarm
// run: everything on loopback ports the kernel picks, a throwaway data dir,
// WebRTC over loopback only, and the demo stream to publish to.
func startBenchBroadcast(ctx context.Context, bc bench.BroadcastConfig, stderr io.Writer) (*bench.Broadcast, error) {
	dir, err := os.MkdirTemp("", "banyan-bench-")
	if err != nil {
		return nil, err
	}
	var o upOptions
	c := newCommand("up", "", "")
	o.register(c)
	// Parse the flags directly: BANYAN_* settings of the caller's own
	// server must not leak into the benchmark's.
	if err := c.fs.Parse([]string{"--http", "127.0.0.1:0", "--rtmp", "127.0.0.1:0", "--turn", "127.0.0.1:0",
		"--data", dir, "--ice-loopback", "--stripes", strconv.Itoa(bc.Stripes), "--root-capacity", strconv.Itoa(bc.RootCapacity)}); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if bc.OnSealed != nil {
		o.OnSealed = func(stream string, e *seeder.Entry) {
			if stream == o.DemoStream {
				bc.OnSealed(e.Epoch, e.Seq, e.Plain)
			}
		}
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
	base := "127.0.0.1:" + portOf(sys.ln.Addr())
	return &bench.Broadcast{
		Stream:     o.DemoStream,
		TrackerURL: "ws://" + base + "/ws",
		OriginURL:  "http://" + base,
		PublishURL: "rtmp://127.0.0.1:" + portOf(sys.seed.RTMPAddr()) + "/live/" + sys.demoKey,
		SeederSent: func() uint64 { return sys.seed.RootSent(o.DemoStream) },
		Close: func() error {
			err := sys.Close()
			os.RemoveAll(dir)
			return err
		},
	}, nil
}
