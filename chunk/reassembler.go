package chunk

import (
	"bytes"
	"errors"
	"strconv"
	"sync"

	"github.com/banyan-live/banyan/internal/errs"
)

// Reassembler errors; test with errors.Is.
var (
	// ErrPieceConflict: the piece disagrees with pieces already held for
	// the same chunk (count, size, or the total its header implies). The
	// first piece wins; call Forget to start the chunk over.
	ErrPieceConflict = errors.New("piece conflicts with earlier pieces")
	// ErrStale: the piece belongs to a chunk below the Expire floor.
	ErrStale = errors.New("piece of an expired chunk")
	// ErrTooLarge: the chunk cannot fit in the reassembler's byte budget.
	ErrTooLarge = errors.New("chunk exceeds reassembly budget")
)

// ReassemblerConfig bounds a Reassembler. Zero fields take defaults.
type ReassemblerConfig struct {
	// MaxChunks is how many incomplete chunks may be held (default 64).
	// When full, the least recently fed chunk is dropped.
	MaxChunks int
	// MaxBytes bounds the memory held for incomplete chunks (default
	// 32 MiB). When full, least recently fed chunks are dropped.
	MaxBytes int
	// DoneMemory is how many completed chunks are remembered, so that late
	// duplicates of their pieces are recognised (default 4*MaxChunks).
	DoneMemory int
	// Retain keeps each piece's Data as given instead of copying it into a
	// chunk-sized buffer; the caller promises never to modify what it
	// passed to Add. An incomplete chunk then holds (and is charged for)
	// the pieces that arrived, not the whole chunk, and each byte is
	// copied once, at completion. For transports that hand over a fresh
	// slice per message (pion does), and for simulations where thousands
	// of receivers share one sender's messages.
	Retain bool
	// Join builds a retained chunk from its pieces, in order, at completion
	// (default: a new slice holding their concatenation). What it returns
	// must equal the concatenation and is the caller's; simulations return
	// the one copy their whole audience shares.
	Join func(parts [][]byte) []byte
}

type chunkID struct {
	epoch uint32
	seq   uint64
}

func (a chunkID) less(b chunkID) bool {
	return a.epoch < b.epoch || (a.epoch == b.epoch && a.seq < b.seq)
}

type partial struct {
	count   int
	size    int // length S of non-last pieces; 0 until one arrives
	lastLen int // length of the last piece; -1 until it arrives
	total   int // sealed length from the header in piece 0; -1 until then
	buf     []byte
	stash   []byte   // the last piece, when it arrives before S is known
	parts   [][]byte // Retain: the pieces themselves, by index
	held    int      // Retain: their bytes
	have    []uint64
	got     int
	charged int
	touched uint64
}

func (e *partial) has(i int) bool { return e.have[i/64]&(1<<(i%64)) != 0 }

// Reassembler rebuilds sealed chunks from pieces that arrive in any order,
// duplicated, interleaved across chunks and epochs. It holds no clock: the
// caller expires old chunks with Expire. It is safe for concurrent use.
//
// It checks geometry (count, sizes, the length the chunk header implies),
// not signatures: the caller verifies the reassembled chunk.
type Reassembler struct {
	cfg ReassemblerConfig

	mu       sync.Mutex
	partials map[chunkID]*partial
	bytes    int
	tick     uint64
	done     map[chunkID]struct{}
	doneRing []chunkID
	doneNext int
	floor    chunkID
	hasFloor bool
}

// NewReassembler returns an empty Reassembler.
func NewReassembler(cfg ReassemblerConfig) *Reassembler {
	if cfg.MaxChunks <= 0 {
		cfg.MaxChunks = 64
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 32 << 20
	}
	if cfg.DoneMemory <= 0 {
		cfg.DoneMemory = 4 * cfg.MaxChunks
	}
	if cfg.Join == nil {
		cfg.Join = joinParts
	}
	return &Reassembler{
		cfg:      cfg,
		partials: make(map[chunkID]*partial),
		done:     make(map[chunkID]struct{}, cfg.DoneMemory),
		doneRing: make([]chunkID, 0, cfg.DoneMemory),
	}
}

// Add takes one piece. fresh reports whether the piece was new (not a
// duplicate) and so worth forwarding. When the piece completes its chunk,
// sealed is the whole chunk, newly allocated and owned by the caller; that
// happens once per chunk. p.Data is copied, so the caller may reuse it,
// unless the Reassembler retains pieces (ReassemblerConfig.Retain).
func (r *Reassembler) Add(p Piece) (sealed []byte, fresh bool, err error) {
	if err := p.validate(); err != nil {
		return nil, false, errs.Wrap("chunk: reassemble: ", err, "")
	}
	id := chunkID{p.Epoch, p.Seq}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hasFloor && id.less(r.floor) {
		return nil, false, errs.Wrap(id.context(), ErrStale, "")
	}
	if _, ok := r.done[id]; ok {
		return nil, false, nil
	}
	e := r.partials[id]
	if e == nil && p.Count == 1 {
		return r.single(id, p.Data)
	}
	isNew := e == nil
	if isNew {
		e = &partial{count: int(p.Count), lastLen: -1, total: -1}
	} else {
		if int(p.Count) != e.count {
			return nil, false, r.conflict(id, "count "+strconv.Itoa(int(p.Count))+", earlier pieces say "+strconv.Itoa(e.count))
		}
		if e.has(int(p.Index)) {
			return nil, false, nil
		}
	}

	// Work out what the chunk looks like with this piece, and check it all
	// fits together before touching any state.
	idx, n := int(p.Index), len(p.Data)
	size, lastLen, total := e.size, e.lastLen, e.total
	if idx == e.count-1 {
		lastLen = n
	} else if size == 0 {
		size = n
	} else if n != size {
		return nil, false, r.mismatch(isNew, id, "piece "+strconv.Itoa(idx)+" has "+strconv.Itoa(n)+" bytes, earlier pieces "+strconv.Itoa(size))
	}
	if idx == 0 {
		// Validate guarantees piece 0 of several holds a whole header.
		h, err := parseHeader(p.Data)
		if err != nil {
			return nil, false, errs.Wrap(id.context()+"piece 0: ", err, "")
		}
		if h.Epoch != p.Epoch || h.Seq != p.Seq {
			return nil, false, errs.Wrap(id.context(), ErrMalformed, ": piece 0 holds epoch "+strconv.FormatUint(uint64(h.Epoch), 10)+" seq "+strconv.FormatUint(h.Seq, 10))
		}
		total = h.SealedLen()
	}
	if err := geometry(e.count, size, lastLen, total); err != nil {
		return nil, false, r.mismatch(isNew, id, err.Error())
	}

	fixed := (e.count + 63) / 64 * 8 // the bitset, and Retain's piece slots
	if r.cfg.Retain {
		fixed += e.count * partHeader
	}
	full := fixed // what the whole chunk will need
	if size > 0 {
		full += e.count * size
	} else {
		full += lastLen // only the last piece has arrived
	}
	need := full
	if r.cfg.Retain {
		need = fixed + e.held + n // no more than full
	}
	if full > r.cfg.MaxBytes {
		if !isNew {
			r.drop(id, e)
		}
		return nil, false, errs.Wrap(id.context(), ErrTooLarge, ": needs "+strconv.Itoa(full)+" bytes, budget "+strconv.Itoa(r.cfg.MaxBytes))
	}
	for r.bytes-e.charged+need > r.cfg.MaxBytes || (isNew && len(r.partials) >= r.cfg.MaxChunks) {
		if !r.evictOldest(id) {
			break // only e itself is left; need <= MaxBytes so it fits
		}
	}

	// Commit.
	if isNew {
		e.have = make([]uint64, (e.count+63)/64)
		r.partials[id] = e
		if r.cfg.Retain {
			e.parts = make([][]byte, e.count)
		}
	}
	if r.cfg.Retain {
		e.parts[idx] = p.Data
		e.held += n
	} else if size > 0 && e.buf == nil {
		e.buf = make([]byte, e.count*size)
		if e.stash != nil {
			copy(e.buf[(e.count-1)*size:], e.stash)
			e.stash = nil
		}
	}
	e.size, e.lastLen, e.total = size, lastLen, total
	switch {
	case r.cfg.Retain:
	case e.buf != nil:
		copy(e.buf[idx*size:], p.Data)
	default:
		e.stash = append([]byte(nil), p.Data...)
	}
	e.have[idx/64] |= 1 << (idx % 64)
	e.got++
	r.tick++
	e.touched = r.tick
	r.bytes += need - e.charged
	e.charged = need

	if e.got < e.count {
		return nil, true, nil
	}
	r.drop(id, e)
	// All pieces are present, so S and the last length are known.
	var out []byte
	if r.cfg.Retain {
		out = r.cfg.Join(e.parts)
	} else {
		out = e.buf[:total:total] // geometry checked total = (count-1)·S + last
	}
	if err := checkWhole(id, out); err != nil {
		return nil, true, errs.Wrap("chunk: reassemble: ", err, "")
	}
	r.markDone(id)
	return out, true, nil
}

// single handles a chunk that travels as one piece.
func (r *Reassembler) single(id chunkID, data []byte) ([]byte, bool, error) {
	if len(data) > r.cfg.MaxBytes {
		return nil, false, errs.Wrap(id.context(), ErrTooLarge, ": "+strconv.Itoa(len(data))+" bytes, budget "+strconv.Itoa(r.cfg.MaxBytes))
	}
	if err := checkWhole(id, data); err != nil {
		return nil, false, errs.Wrap("chunk: reassemble: ", err, "")
	}
	r.markDone(id)
	if r.cfg.Retain {
		return data[:len(data):len(data)], true, nil
	}
	return append([]byte(nil), data...), true, nil
}

// joinParts is the default Join; bytes.Join skips zeroing the new slice.
func joinParts(parts [][]byte) []byte { return bytes.Join(parts, nil) }

// partHeader is what Retain charges per piece slot, besides its bytes.
const partHeader = 24

// checkWhole checks that a reassembled chunk is what its pieces claimed.
func checkWhole(id chunkID, b []byte) error {
	h, err := parseHeader(b)
	if err != nil {
		return errs.Wrap("epoch "+strconv.FormatUint(uint64(id.epoch), 10)+" seq "+strconv.FormatUint(id.seq, 10)+": ", err, "")
	}
	if h.Epoch != id.epoch || h.Seq != id.seq || h.SealedLen() != len(b) {
		return errs.Wrap("epoch "+strconv.FormatUint(uint64(id.epoch), 10)+" seq "+strconv.FormatUint(id.seq, 10)+": ", ErrMalformed, ": reassembled "+strconv.Itoa(len(b))+" bytes holding epoch "+strconv.FormatUint(uint64(h.Epoch), 10)+" seq "+strconv.FormatUint(h.Seq, 10)+" of "+strconv.Itoa(h.SealedLen())+" bytes")
	}
	return nil
}

// geometry checks that count pieces of size S (0 unknown), a last piece of
// lastLen (-1 unknown) and a total (-1 unknown) can describe one chunk.
func geometry(count, size, lastLen, total int) error {
	if count == 1 {
		if lastLen >= 0 && total >= 0 && lastLen != total {
			return errors.New("single piece of " + strconv.Itoa(lastLen) + " bytes, header says " + strconv.Itoa(total))
		}
		return nil
	}
	if size > 0 {
		// The last piece has at least one byte.
		if (count-1)*size >= MaxChunkSize {
			return errors.New(strconv.Itoa(count) + " pieces of " + strconv.Itoa(size) + " bytes exceed the largest chunk (" + strconv.Itoa(MaxChunkSize) + " bytes)")
		}
		if lastLen > size {
			return errors.New("last piece of " + strconv.Itoa(lastLen) + " bytes is longer than the others (" + strconv.Itoa(size) + ")")
		}
		if total >= 0 && (total <= (count-1)*size || total > count*size) {
			return errors.New(strconv.Itoa(count) + " pieces of " + strconv.Itoa(size) + " bytes cannot hold a " + strconv.Itoa(total) + "-byte chunk")
		}
		if lastLen >= 0 && total >= 0 && (count-1)*size+lastLen != total {
			return errors.New("pieces add up to " + strconv.Itoa((count-1)*size+lastLen) + " bytes, header says " + strconv.Itoa(total))
		}
		return nil
	}
	if lastLen >= 0 && total >= 0 {
		rest := total - lastLen
		if rest < (count-1)*HeaderSize || rest%(count-1) != 0 || rest/(count-1) < lastLen {
			return errors.New("last piece of " + strconv.Itoa(lastLen) + " bytes does not fit " + strconv.Itoa(count) + " pieces of a " + strconv.Itoa(total) + "-byte chunk")
		}
	}
	return nil
}

func (r *Reassembler) mismatch(isNew bool, id chunkID, detail string) error {
	if isNew {
		return errs.Wrap(id.context(), ErrMalformed, ": "+detail)
	}
	return r.conflict(id, detail)
}

func (r *Reassembler) conflict(id chunkID, detail string) error {
	return errs.Wrap(id.context(), ErrPieceConflict, ": "+detail)
}

// context starts the text of an error about chunk id.
func (id chunkID) context() string {
	return "chunk: reassemble epoch " + strconv.FormatUint(uint64(id.epoch), 10) + " seq " + strconv.FormatUint(id.seq, 10) + ": "
}

func (r *Reassembler) drop(id chunkID, e *partial) {
	delete(r.partials, id)
	r.bytes -= e.charged
	e.charged = 0
}

// evictOldest drops the least recently fed partial chunk other than keep.
func (r *Reassembler) evictOldest(keep chunkID) bool {
	var (
		victim chunkID
		ve     *partial
	)
	for id, e := range r.partials {
		if id != keep && (ve == nil || e.touched < ve.touched) {
			victim, ve = id, e
		}
	}
	if ve == nil {
		return false
	}
	r.drop(victim, ve)
	return true
}

func (r *Reassembler) markDone(id chunkID) {
	if len(r.doneRing) < r.cfg.DoneMemory {
		r.doneRing = append(r.doneRing, id)
	} else {
		delete(r.done, r.doneRing[r.doneNext])
		r.doneRing[r.doneNext] = id
		r.doneNext = (r.doneNext + 1) % len(r.doneRing)
	}
	r.done[id] = struct{}{}
}

// Missing lists the piece indexes still absent for a chunk being
// reassembled, for repair requests. ok is false when no piece of the chunk
// is held (never seen, completed, forgotten or evicted): ask for all of it.
func (r *Reassembler) Missing(epoch uint32, seq uint64) (missing []uint16, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.partials[chunkID{epoch, seq}]
	if e == nil {
		return nil, false
	}
	missing = make([]uint16, 0, e.count-e.got)
	for i := 0; i < e.count; i++ {
		if !e.has(i) {
			missing = append(missing, uint16(i))
		}
	}
	return missing, true
}

// Forget drops whatever is held for one chunk; later pieces start it anew.
// Use it after ErrPieceConflict or when the chunk arrived another way.
func (r *Reassembler) Forget(epoch uint32, seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := chunkID{epoch, seq}
	if e := r.partials[id]; e != nil {
		r.drop(id, e)
	}
}

// Expire drops every chunk of an epoch before epoch, and of epoch below
// minSeq, and rejects their later pieces with ErrStale. Epochs increase, so
// the floor only moves forward; a lower floor is ignored. It returns how
// many incomplete chunks were dropped.
func (r *Reassembler) Expire(epoch uint32, minSeq uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	floor := chunkID{epoch, minSeq}
	if r.hasFloor && floor.less(r.floor) {
		return 0
	}
	r.floor, r.hasFloor = floor, true
	dropped := 0
	for id, e := range r.partials {
		if id.less(floor) {
			r.drop(id, e)
			dropped++
		}
	}
	return dropped
}

// Len returns how many incomplete chunks are held.
func (r *Reassembler) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.partials)
}

// Bytes returns the memory charged for incomplete chunks.
func (r *Reassembler) Bytes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bytes
}
