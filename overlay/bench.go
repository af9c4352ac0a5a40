package overlay

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"
)

// BenchConfig parameterises Bench. Zero fields take defaults.
type BenchConfig struct {
	Peers        int `json:"peers"`         // default 100000
	Stripes      int `json:"stripes"`       // default DefaultStripes
	RootCapacity int `json:"root_capacity"` // default DefaultRootCapacity
	Churn        int `json:"churn"`         // leave+join pairs at full size; default Peers/5
	// ChurnPerSec is the simulated departure rate that drives the clock
	// passed to Tick (called every 100 ms of simulated time). Default 200.
	ChurnPerSec float64 `json:"churn_per_sec"`
	Seed        uint64  `json:"seed"`
}

// BenchResult is what `banyan bench tracker` prints as JSON.
type BenchResult struct {
	Peers        int     `json:"peers"`
	Stripes      int     `json:"stripes"`
	JoinsPerSec  float64 `json:"joins_per_sec"`  // building the forest from empty to Peers
	LeavesPerSec float64 `json:"leaves_per_sec"` // during churn at full size
	AssignP50us  float64 `json:"assign_p50_us"`  // Join latency during churn at full size
	AssignP99us  float64 `json:"assign_p99_us"`
	LeaveP99us   float64 `json:"leave_p99_us"`
	TickP99us    float64 `json:"tick_p99_us"`
	BuildDepth   int     `json:"build_max_depth"` // over all stripes, right after the build
	BytesPerPeer float64 `json:"bytes_per_peer"`  // heap held by the forest / peers
	MaxDepth     int     `json:"max_depth"`       // over all stripes, after churn
	MeanDepth    float64 `json:"mean_depth"`      // mean over stripes and peers
	LogFN        float64 `json:"log_f_n"`         // log base (mean interior capacity) of Peers
	OriginFed    int     `json:"origin_fed"`      // peer-stripes on the origin fallback
	SymPairs     int     `json:"sym_pairs"`       // symmetric-symmetric edges
}

// SampleCapacity draws a capacity (children slots) from the mix used by the
// benchmark and tests: 20% 0, 30% 1–2, 40% 3–6, 10% 10–50.
func SampleCapacity(r *rand.Rand) int {
	switch u := r.IntN(100); {
	case u < 20:
		return 0
	case u < 50:
		return 1 + r.IntN(2)
	case u < 90:
		return 3 + r.IntN(4)
	default:
		return 10 + r.IntN(41)
	}
}

// SampleNAT draws a NAT kind: 15% symmetric, 20% open, 60% cone, 5% unknown.
func SampleNAT(r *rand.Rand) NAT {
	switch u := r.IntN(100); {
	case u < 15:
		return NATSymmetric
	case u < 35:
		return NATOpen
	case u < 95:
		return NATCone
	default:
		return NATUnknown
	}
}

var benchRegions = []string{"eu-west", "eu-central", "us-east", "us-west", "ap-south", "ap-east", "sa-east", ""}

// RandomPeer draws a realistic peer with the given id.
func RandomPeer(r *rand.Rand, id PeerID) PeerInfo {
	return PeerInfo{
		ID:       id,
		Capacity: SampleCapacity(r),
		NAT:      SampleNAT(r),
		Locality: benchRegions[r.IntN(len(benchRegions))],
		NoUpload: r.IntN(100) < 3,
	}
}

// Bench builds a forest of cfg.Peers realistic peers, measuring join
// throughput and heap per peer, then runs cfg.Churn leave+join pairs at full
// size (with Tick driven by a simulated clock), timing each call for the
// latency percentiles. Figures are wall-clock on the calling goroutine.
func Bench(cfg BenchConfig) (BenchResult, error) {
	if cfg.Peers <= 0 {
		cfg.Peers = 100000
	}
	if cfg.Stripes <= 0 {
		cfg.Stripes = DefaultStripes
	}
	if cfg.RootCapacity <= 0 {
		cfg.RootCapacity = DefaultRootCapacity
	}
	if cfg.Churn <= 0 {
		cfg.Churn = max(cfg.Peers/5, 1)
	}
	if cfg.ChurnPerSec <= 0 {
		cfg.ChurnPerSec = 200
	}
	step := time.Duration(float64(time.Second) / cfg.ChurnPerSec)
	tickEvery := max(int(100*time.Millisecond/step), 1)
	r := rand.New(rand.NewPCG(cfg.Seed, 0xba2ba2))
	peers := make([]PeerInfo, cfg.Peers+cfg.Churn)
	var capSum, capN float64
	for i := range peers {
		peers[i] = RandomPeer(r, PeerID(i+1))
		if c := peers[i].Capacity; c >= 2 && !peers[i].NoUpload {
			capSum += float64(c)
			capN++
		}
	}
	live := make([]PeerID, 0, cfg.Peers)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	f, err := New(Config{Stripes: cfg.Stripes, RootCapacity: cfg.RootCapacity, Seed: cfg.Seed})
	if err != nil {
		return BenchResult{}, fmt.Errorf("overlay: bench: %w", err)
	}
	start := time.Now()
	for _, p := range peers[:cfg.Peers] {
		if _, err := f.Join(p); err != nil {
			return BenchResult{}, fmt.Errorf("overlay: bench: join: %w", err)
		}
	}
	build := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	for _, p := range peers[:cfg.Peers] {
		live = append(live, p.ID)
	}

	buildDepth := f.Stats().MaxDepth
	joinLat := make([]time.Duration, 0, cfg.Churn)
	leaveLat := make([]time.Duration, 0, cfg.Churn)
	var tickLat []time.Duration
	var leaveTotal time.Duration
	now := time.Unix(0, 0)
	for i := 0; i < cfg.Churn; i++ {
		now = now.Add(step)
		if i%tickEvery == 0 {
			t0 := time.Now()
			f.Tick(now)
			tickLat = append(tickLat, time.Since(t0))
		}
		k := r.IntN(len(live))
		id := live[k]
		t0 := time.Now()
		if _, err := f.Leave(id); err != nil {
			return BenchResult{}, fmt.Errorf("overlay: bench: leave: %w", err)
		}
		t1 := time.Now()
		p := peers[cfg.Peers+i]
		if _, err := f.Join(p); err != nil {
			return BenchResult{}, fmt.Errorf("overlay: bench: join: %w", err)
		}
		t2 := time.Now()
		live[k] = p.ID
		leaveLat = append(leaveLat, t1.Sub(t0))
		joinLat = append(joinLat, t2.Sub(t1))
		leaveTotal += t1.Sub(t0)
	}

	res := BenchResult{
		Peers:        cfg.Peers,
		Stripes:      cfg.Stripes,
		JoinsPerSec:  float64(cfg.Peers) / build.Seconds(),
		LeavesPerSec: float64(cfg.Churn) / leaveTotal.Seconds(),
		AssignP50us:  pct(joinLat, 0.50),
		AssignP99us:  pct(joinLat, 0.99),
		LeaveP99us:   pct(leaveLat, 0.99),
		TickP99us:    pct(tickLat, 0.99),
		BuildDepth:   buildDepth,
		BytesPerPeer: float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(cfg.Peers),
	}
	if capN > 0 {
		res.LogFN = math.Log(float64(cfg.Peers)) / math.Log(capSum/capN)
	}
	st := f.Stats()
	res.MaxDepth = st.MaxDepth
	for _, ss := range st.Stripes {
		res.MeanDepth += ss.MeanDepth / float64(len(st.Stripes))
		res.OriginFed += ss.Origin
	}
	for s := 0; s < f.Stripes(); s++ {
		f.Walk(s, func(e Edge) bool {
			if e.Parent != Origin && f.nodes[f.ids[e.Parent]].nat == NATSymmetric && f.nodes[f.ids[e.Child]].nat == NATSymmetric {
				res.SymPairs++
			}
			return true
		})
	}
	runtime.KeepAlive(f)
	return res, nil
}

func pct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := min(int(math.Ceil(p*float64(len(d))))-1, len(d)-1)
	return float64(d[max(i, 0)].Nanoseconds()) / 1e3
}
