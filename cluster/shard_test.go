package cluster

import (
	"fmt"
	"log/slog"
	"testing"
	"time"
)

func (e env) shard(t *testing.T, id string, lost *lostLog) *Shard {
	t.Helper()
	s, err := StartShard(ShardConfig{
		Client: e.st.Client(), Prefix: e.prefix, TTL: 2 * time.Second,
		Self: TrackerRecord{ID: id, URL: "ws://" + id + "/ws"},
		Lost: func(stream string) { lost.add(stream, "lost") }, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestShardOwnership: two trackers agree on each stream's owner (the
// rendezvous winner, which claims it), a newcomer does not steal streams
// already owned, a closed owner's streams go to the other, and a tracker
// whose lease is revoked loses (fences) the streams it owned.
func TestShardOwnership(t *testing.T) {
	e := newEnv(t)
	var lostA, lostB lostLog
	a, b := e.shard(t, "ta", &lostA), e.shard(t, "tb", &lostB)
	eventually(t, "both trackers known", func() bool { return len(a.Trackers()) == 2 && len(b.Trackers()) == 2 })

	owners := map[string]int{}
	for i := range 20 {
		stream := fmt.Sprintf("s%d", i)
		winner := Rendezvous(stream, []string{"ta", "tb"})
		// Ask the loser first: it names the winner without claiming.
		first, second := a, b
		if winner == "ta" {
			first, second = b, a
		}
		u1, err1 := first.Owner(stream)
		u2, err2 := second.Owner(stream)
		if err1 != nil || err2 != nil || u1 != "ws://"+winner+"/ws" || u2 != "" {
			t.Fatalf("%s: loser says %q %v, winner says %q %v (winner %s)", stream, u1, err1, u2, err2, winner)
		}
		owners[winner]++
	}
	if owners["ta"] == 0 || owners["tb"] == 0 {
		t.Fatalf("20 streams all on one tracker: %v", owners)
	}

	// A stream ta owns stays with it when a third tracker joins.
	var mine string
	for i := range 20 {
		if s := fmt.Sprintf("s%d", i); Rendezvous(s, []string{"ta", "tb"}) == "ta" {
			mine = s
			break
		}
	}
	var lostC lostLog
	c := e.shard(t, "tc", &lostC)
	eventually(t, "third tracker known", func() bool { return len(c.Trackers()) == 3 })
	if u, err := c.Owner(mine); err != nil || u != "ws://ta/ws" {
		t.Fatalf("newcomer on %s: %q %v, want ta (claims are sticky)", mine, u, err)
	}

	// Fencing: ta's lease is revoked behind its back.
	a.mu.Lock()
	lease := a.lease
	a.mu.Unlock()
	if _, err := e.st.Client().Revoke(t.Context(), lease); err != nil {
		t.Fatal(err)
	}
	got := lostA.wait(t, owners["ta"])
	t.Logf("ta lost %d streams after its lease was revoked", len(got))
	// The stream goes to the winner among the live trackers.
	eventually(t, "ta's stream re-owned", func() bool {
		u, err := c.Owner(mine)
		if err != nil {
			return false
		}
		ids := []string{"tb", "tc"}
		if len(c.Trackers()) == 3 { // ta registered anew
			ids = append(ids, "ta")
		}
		w := Rendezvous(mine, ids)
		return (w == "tc" && u == "") || (w != "tc" && u == "ws://"+w+"/ws")
	})
}

// TestShardRebalance: with ShardConfig.Moved, a tracker that joins and
// wins a stream by rendezvous hashing gets it: the old owner gives up its
// claim and moves the stream's clients to the newcomer, which claims it
// when they arrive; a stream the old owner still wins stays. Before
// rebalancing, claims were sticky and a newcomer took nothing.
func TestShardRebalance(t *testing.T) {
	e := newEnv(t)
	moved := make(chan string, 16)
	a, err := StartShard(ShardConfig{
		Client: e.st.Client(), Prefix: e.prefix, TTL: 2 * time.Second,
		Self:   TrackerRecord{ID: "ta", URL: "ws://ta/ws"},
		Moved:  func(stream, url string) { moved <- stream + " → " + url },
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	var goes, stays string
	for i := 0; goes == "" || stays == ""; i++ {
		if i == 1000 {
			t.Fatal("no stream split between ta and tb in 1000")
		}
		s := fmt.Sprintf("s%d", i)
		if Rendezvous(s, []string{"ta", "tb"}) == "tb" {
			goes = s
		} else {
			stays = s
		}
	}
	for _, s := range []string{goes, stays} {
		if u, err := a.Owner(s); err != nil || u != "" {
			t.Fatalf("ta alone on %s: %q %v", s, u, err)
		}
	}
	var lostB lostLog
	b := e.shard(t, "tb", &lostB)
	select {
	case m := <-moved:
		if m != goes+" → ws://tb/ws" {
			t.Fatalf("moved %q, want %s to tb", m, goes)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("ta did not hand %s over to the newcomer", goes)
	}
	if u, err := b.Owner(goes); err != nil || u != "" {
		t.Fatalf("tb on %s after the hand-over: %q %v, want it to own it", goes, u, err)
	}
	if u, err := a.Owner(goes); err != nil || u != "ws://tb/ws" {
		t.Fatalf("ta on %s after the hand-over: %q %v, want tb", goes, u, err)
	}
	if u, err := b.Owner(stays); err != nil || u != "ws://ta/ws" {
		t.Fatalf("tb on %s: %q %v, want ta to keep it", stays, u, err)
	}
	select {
	case m := <-moved:
		t.Fatalf("ta moved %q too", m)
	default:
	}
}
