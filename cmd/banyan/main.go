// Command banyan runs every Banyan process: the all-in-one `up`, the
// tracker, seeder, TURN relay and native peer, key management and benchmarks.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

type subcommand struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func subcommands() map[string]subcommand {
	return map[string]subcommand{
		"up":         {"run tracker, seeder, TURN and web pages in one process (the main job)", runUp},
		"key":        {"create, list and revoke stream keys", runKey},
		"ingest":     {"ask the stream manager where to publish a stream", runIngest},
		"stream":     {"make a stream private or public", runStream},
		"token":      {"mint viewer tokens for private streams; print the token secret", runToken},
		"admin":      {"rotate the admin token; read the audit log", runAdmin},
		"tracker":    {"run the tracker alone (signaling, overlay, admin API, dashboard)", runTracker},
		"seeder":     {"run a seeder alone (RTMP/WHIP ingest, origin HTTP, LL-HLS)", runSeeder},
		"turn":       {"run the TURN relay alone", runTurn},
		"seeder-key": {"create or revoke a cluster seeder's own secret in etcd", runSeederKey},
		"etcd-role":  {"make the etcd role a cluster tracker or seeder needs", runEtcdRole},
		"peer":       {"run a native peer: headless viewer, recorder or relay edge", runPeer},
		"bench":      {"run swarm and tracker benchmarks that print JSON", runBench},
		"report":     {"print a stream's savings by minute: bytes by sender, seeder egress, offload (--json, --csv)", runReport},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := subcommands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stdout, cmds)
		return 0
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintln(stdout, "banyan", version())
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "banyan: unknown command %q (see banyan --help)\n", args[0])
		return 2
	}
	err := c.run(ctx, args[1:], stdout, stderr)
	var ue usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, ue.msg)
		return 2
	default:
		fmt.Fprintf(stderr, "banyan %s: %v\n", args[0], err)
		return 1
	}
}

func printUsage(w io.Writer, cmds map[string]subcommand) {
	fmt.Fprint(w, "Banyan: a peer-assisted live broadcast mesh.\n\nUsage: banyan <command> [flags]\n\nCommands:\n")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	for _, n := range names {
		fmt.Fprintf(w, "  %-*s %s\n", width, n, cmds[n].summary)
	}
	fmt.Fprint(w, "\nRun 'banyan <command> --help' for its flags. Every flag has a BANYAN_* environment twin.\n")
}

// newLogger builds the process logger; logs always go to stderr so that
// stdout carries only results (JSON with --json).
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("banyan: bad --log-level %q (debug, info, warn, error)", level)}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func version() string {
	return "dev"
}
