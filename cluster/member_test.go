package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/etcdtest"
	"github.com/banyan-live/banyan/store"
)

// TestWatchResumesAfterQuorumLoss: what the cluster does to the streams
// a seeder carries while its watch is down still reaches the seeder
// once etcd is back. etcd closes a watch that requires a leader when
// its member has none (two of three down); right after a quorum is back
// a key is revoked, one rotated, a claim taken by another seeder and a
// private switch set: the first three end their publishes, the switch
// is Changed, and an untouched stream goes on. Before the fix the watch
// started again from "now", up to a second later, and missed them.
func TestWatchResumesAfterQuorumLoss(t *testing.T) {
	srvs := etcdtest.StartCluster(t, etcdtest.Embedded, 3)
	// The store and the member talk to the member that stays up: their
	// watch ends for want of a leader, not of a connection (a broken
	// connection clientv3 resumes by itself).
	e := openEnv(t, srvs[0].Endpoint)
	gens := map[string]uint64{}
	for _, name := range []string{"revoked", "rotated", "taken", "private", "same"} {
		st, _, err := e.st.CreateStream(name)
		if err != nil {
			t.Fatal(err)
		}
		gens[name] = st.KeyGen
	}
	var lost lostLog
	changed := make(chan string, 16)
	ended := make(chan struct{}, 1)
	m, err := StartMember(MemberConfig{
		Client: e.st.Client(), Prefix: e.prefix, TTL: 30 * time.Second,
		Record:  func() SeederRecord { return SeederRecord{ID: "a"} },
		Lost:    lost.add,
		Changed: func(st store.Stream) { changed <- fmt.Sprintf("%s private=%v", st.Name, st.Private) },
		Logger:  slog.New(signalOn{t: t, msg: watchEndedMsg, ch: ended}),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for name, gen := range gens {
		if err := m.Claim(name, gen); err != nil {
			t.Fatal(err)
		}
	}

	for _, s := range srvs[1:] {
		s.Kill()
	}
	select {
	case <-ended:
	case <-time.After(20 * time.Second):
		t.Fatal("the member's watch did not end within 20 s of its etcd losing the leader")
	}
	srvs[1].Restart(t) // a quorum again
	if _, err := e.st.Revoke("revoked"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.st.RotateKey("rotated"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.st.Client().Put(ctx, claimsPrefix(e.prefix)+"taken", "b"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetPrivate("private", true); err != nil {
		t.Fatal(err)
	}

	got := lost.wait(t, 3)
	slices.Sort(got)
	want := []string{"revoked: key revoked or rotated", "rotated: key revoked or rotated", "taken: taken over by seeder b"}
	if !slices.Equal(got, want) {
		t.Fatalf("lost %q, want %q", got, want)
	}
	select {
	case c := <-changed:
		if c != "private private=true" {
			t.Fatalf("Changed %q, want the private switch", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no Changed for the private switch within 5 s")
	}
	select {
	case c := <-changed:
		t.Fatalf("Changed %q: only the private switch changed", c)
	default:
	}
}

// signalOn is a slog handler that logs to the test and signals ch
// (never blocking) on each record of message msg.
type signalOn struct {
	t   *testing.T
	msg string
	ch  chan<- struct{}
}

func (h signalOn) Enabled(context.Context, slog.Level) bool { return true }
func (h signalOn) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h signalOn) WithGroup(string) slog.Handler            { return h }

func (h signalOn) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s", a); return true })
	h.t.Log(time.Now().Format("15:04:05.000"), r.Level, r.Message, b.String())
	if r.Message == h.msg {
		select {
		case h.ch <- struct{}{}:
		default:
		}
	}
	return nil
}
