package overlay

import (
	"errors"
	"testing"
	"time"
)

// byteReader hands out fuzz bytes; past the end it returns zeros.
type byteReader struct {
	b []byte
	i int
}

func (r *byteReader) next() int {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return int(r.b[r.i-1])
}

func (r *byteReader) done() bool { return r.i >= len(r.b) }

var fuzzLocs = []string{"", "eu", "us", "ap"}

// runOps decodes data as a configuration followed by an operation sequence
// and runs it, checking every invariant after every operation and replaying
// the reported changes on a mirror.
func runOps(t *testing.T, data []byte) {
	r := &byteReader{b: data}
	cfg := Config{
		Stripes:             1 + r.next()%4,
		RootCapacity:        1 + r.next()%4,
		MinInteriorCapacity: 1 + r.next()%3,
		MaxMovesPerUpdate:   1 + r.next()%4,
		MovesPerSecond:      float64(1 + r.next()%20),
		NATSlack:            r.next() % 3,
		Sample:              1 + r.next()%4,
		Seed:                uint64(r.next()),
	}
	m := newSim(t, cfg, 1)
	peer := func() (PeerID, bool) {
		if len(m.live) == 0 {
			return 0, false
		}
		return m.live[r.next()%len(m.live)], true
	}
	for ops := 0; !r.done() && ops < 2000; ops++ {
		m.ops++
		op := r.next()
		var ch []Change
		var err error
		switch op % 8 {
		case 0, 1, 2:
			c := r.next()
			p := PeerInfo{ID: m.next, Capacity: c % 12, NAT: NAT(r.next() % int(natKinds)),
				Locality: fuzzLocs[r.next()%len(fuzzLocs)], NoUpload: c >= 240}
			if c >= 200 && c < 240 {
				p.Capacity = c // big relay
			}
			var res Result
			res, err = m.f.Join(p)
			if err == nil {
				m.next++
				m.live = append(m.live, p.ID)
				ch = res.Changes
				for s, par := range res.Parents {
					if (par == Origin) != errors.Is(res.StripeErr(s), ErrNoCapacity) {
						t.Fatalf("op %d: StripeErr(%d) disagrees with parent %d", m.ops, s, par)
					}
				}
			}
		case 3:
			id, ok := peer()
			if !ok {
				continue
			}
			ch, err = m.f.Leave(id)
			if err == nil {
				for i, v := range m.live {
					if v == id {
						m.live[i] = m.live[len(m.live)-1]
						m.live = m.live[:len(m.live)-1]
						break
					}
				}
			}
		case 4:
			id, ok := peer()
			if !ok {
				continue
			}
			ch, err = m.f.UpdateCapacity(id, r.next()%20, m.now)
		case 5:
			id, ok := peer()
			if !ok {
				continue
			}
			switch r.next() % 6 {
			case 0, 1:
				ch, err = m.f.ReportBadParent(id, r.next()%cfg.Stripes)
			case 2:
				err = m.f.Suspect(id)
			case 3:
				ch, err = m.f.Alive(id)
			case 4:
				ch, err = m.f.ReportGoneParent(id, r.next()%cfg.Stripes, m.now)
			case 5:
				m.f.Heard(id, m.now)
			}
		case 6:
			id, ok := peer()
			if !ok {
				continue
			}
			ch, err = m.f.SetNAT(id, NAT(r.next()%int(natKinds)))
		case 7:
			m.now = m.now.Add(time.Duration(r.next()) * 10 * time.Millisecond)
			ch = m.f.Tick(m.now)
		}
		if err != nil {
			t.Fatalf("op %d (%d): %v", m.ops, op%8, err)
		}
		m.verifyChanges(ch)
		if err := m.f.Check(); err != nil {
			t.Fatalf("op %d (%d): %v", m.ops, op%8, err)
		}
		m.verifyMirror()
	}
}

func FuzzOps(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1, 1, 0, 3, 1, 2, 3, 3, 0, 3})
	f.Add([]byte{1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 2, 2, 1, 4, 0, 0, 3, 0, 5, 0, 0, 7, 50})
	f.Add([]byte("\x03\x00\x01\x02\x03\x00\x01\x02\x00\x0b\x03\x01\x00\x0a\x03\x02\x08\xc8\x00\x00\x03\x01\x04\x01\x00\x05\x02\x01\x06\x00\x03\x07\xff\x03\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return
		}
		runOps(t, data)
	})
}

// TestOpsAdversarial runs the fuzz driver on long deterministic byte
// strings so that plain `go test` covers deep sequences too.
func TestOpsAdversarial(t *testing.T) {
	for seed := 1; seed <= 6; seed++ {
		data := make([]byte, 3000)
		x := uint32(seed * 2654435761)
		for i := range data {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			data[i] = byte(x)
		}
		runOps(t, data)
	}
}
