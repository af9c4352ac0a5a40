package overlay

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

func TestBench(t *testing.T) {
	res, err := Bench(BenchConfig{Peers: 5000, Stripes: 4, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Peers != 5000 || res.Stripes != 4 || res.JoinsPerSec <= 0 || res.LeavesPerSec <= 0 ||
		res.AssignP99us < res.AssignP50us || res.AssignP50us <= 0 || res.MaxDepth < 2 || res.BytesPerPeer <= 0 ||
		res.LogFN <= 0 {
		t.Fatalf("implausible result %+v", res)
	}
	if _, err := json.Marshal(res); err != nil {
		t.Fatal(err)
	}
}

// TestBenchFigures prints Bench results when BANYAN_OVERLAY_BENCH is set to a
// peer count (several seconds at 100k, so it is off by default):
//
//	BANYAN_OVERLAY_BENCH=100000 go test ./overlay -run BenchFigures -v
func TestBenchFigures(t *testing.T) {
	v := os.Getenv("BANYAN_OVERLAY_BENCH")
	if v == "" {
		t.Skip("set BANYAN_OVERLAY_BENCH=<peers> to print bench figures")
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []int{2, 4} {
		res, err := Bench(BenchConfig{Peers: n, Stripes: k, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(res)
		t.Logf("%s", b)
	}
}

func benchPeers(n int, seed uint64) []PeerInfo {
	r := rand.New(rand.NewPCG(seed, 3))
	p := make([]PeerInfo, n)
	for i := range p {
		p[i] = RandomPeer(r, PeerID(i+1))
	}
	return p
}

// BenchmarkJoin builds a 100k-peer forest per iteration and reports joins/s.
func BenchmarkJoin(b *testing.B) {
	const n = 100000
	peers := benchPeers(n, 1)
	for _, k := range []int{2, 4} {
		b.Run(fmt.Sprintf("K=%d", k), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f, _ := New(Config{Stripes: k, Seed: 1})
				for _, p := range peers {
					if _, err := f.Join(p); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "joins/s")
		})
	}
}

// BenchmarkLeave removes peers from a 100k-peer forest, one departure per op
// (the forest is rebuilt, untimed, when it falls below 90k).
func BenchmarkLeave(b *testing.B) {
	const n = 100000
	peers := benchPeers(n, 2)
	for _, k := range []int{2, 4} {
		b.Run(fmt.Sprintf("K=%d", k), func(b *testing.B) {
			var f *Forest
			var order []int
			r := rand.New(rand.NewPCG(9, 9))
			build := func() {
				f, _ = New(Config{Stripes: k, Seed: 1})
				for _, p := range peers {
					f.Join(p)
				}
				order = r.Perm(n)[:n/10]
			}
			b.StopTimer()
			build()
			b.StartTimer()
			for i := 0; i < b.N; i++ {
				if len(order) == 0 {
					b.StopTimer()
					build()
					b.StartTimer()
				}
				if _, err := f.Leave(peers[order[0]].ID); err != nil {
					b.Fatal(err)
				}
				order = order[1:]
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "leaves/s")
		})
	}
}

// BenchmarkChurn is one leave plus one join at 100k peers, with Tick every
// 20 pairs on a simulated clock.
func BenchmarkChurn(b *testing.B) {
	const n = 100000
	for _, k := range []int{2, 4} {
		b.Run(fmt.Sprintf("K=%d", k), func(b *testing.B) {
			peers := benchPeers(n, 3)
			f, _ := New(Config{Stripes: k, Seed: 1})
			for _, p := range peers {
				f.Join(p)
			}
			r := rand.New(rand.NewPCG(4, 4))
			pr := rand.New(rand.NewPCG(5, 5))
			next := PeerID(n + 1)
			now := time.Unix(0, 0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				j := r.IntN(n)
				if _, err := f.Leave(peers[j].ID); err != nil {
					b.Fatal(err)
				}
				peers[j] = RandomPeer(pr, next)
				next++
				if _, err := f.Join(peers[j]); err != nil {
					b.Fatal(err)
				}
				if now = now.Add(5 * time.Millisecond); i%20 == 0 {
					f.Tick(now)
				}
			}
		})
	}
}
