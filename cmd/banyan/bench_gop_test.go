package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/banyan-live/banyan/bench"
)

// TestBenchSwarmGOPFlag: --gop reaches the mem model (and its window), and
// is refused with the other transports or when not a positive multiple of
// the chunk.
func TestBenchSwarmGOPFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		gop  int64
		win  int64
	}{
		{nil, 1000, 3000},
		{[]string{"--gop", "4s"}, 4000, 5000},
		{[]string{"--gop", "8s", "--window", "3s"}, 8000, 3000},
	} {
		var out, errb bytes.Buffer
		args := append([]string{"swarm", "--peers", "5", "--duration", "2s", "--json"}, tc.args...)
		if err := runBench(context.Background(), args, &out, &errb); err != nil {
			t.Fatalf("%v: %v\n%s", tc.args, err, errb.String())
		}
		var r bench.SwarmResult
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if r.GOPms != tc.gop || r.WindowMs != tc.win {
			t.Errorf("%v: gop_ms %d window_ms %d, want %d and %d", tc.args, r.GOPms, r.WindowMs, tc.gop, tc.win)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--gop", "2s", "--transport", "webrtc"}, "--gop is for --transport mem only"},
		{[]string{"--gop", "2s", "--transport", "netns"}, "--gop is for --transport mem only"},
		{[]string{"--gop", "300ms"}, "multiple of the " + bench.ChunkDuration.String() + " chunk"},
		{[]string{"--gop", "0s"}, "positive multiple"},
		{[]string{"--gop", "-1s"}, "positive multiple"},
	} {
		var out, errb bytes.Buffer
		err := runBench(context.Background(), append([]string{"swarm", "--peers", "5", "--duration", "2s"}, tc.args...), &out, &errb)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want a usage error saying %q", tc.args, err, tc.want)
		}
	}
}
