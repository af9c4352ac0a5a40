package rtmpingest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/banyan-live/banyan/media/flv"
)

// guard sits between the TCP connection and go-rtmp's reader. go-rtmp
// v0.0.7 trusts its peer more than an Internet-facing ingest can:
//
//   - it enforces no message size (a 16 MiB message per chunk stream, on
//     as many chunk streams as the peer likes) and no chunk-size limit;
//   - go-amf0 allocates a strict array's declared length up front (2^31
//     elements) and recurses without a depth limit (a stack overflow is
//     fatal in Go, not a recoverable panic);
//   - it mis-reads type-3 chunks that carry an extended timestamp and
//     treats a type-3 header after a type-0 one as a zero delta, so
//     timestamps from ffmpeg/librtmp break after 4.6 hours.
//
// The guard therefore parses the chunk stream itself with strict limits,
// validates AMF0 bodies with a bounded decoder, and re-emits every complete
// message as a single type-0 chunk (after announcing the largest chunk
// size), a form go-rtmp reads correctly. Protocol-control messages the
// guard consumes (SetChunkSize, Abort) are not forwarded; media messages
// are dropped until the publish is authorized.
type guard struct {
	nc   net.Conn
	br   *bufio.Reader
	lim  guardLimits
	idle time.Duration

	hsLeft     int // handshake bytes still to pass through
	chunkSize  uint32
	streams    map[uint32]*chunkStream
	buffered   int   // bytes held in partial messages
	consumed   int64 // chunk-layer bytes parsed before authorization
	authorized atomic.Bool

	out    []byte // bytes for go-rtmp
	outPos int
	hdr    [11]byte
	err    error // sticky; read by the owner after the read loop ends

	onClose func()
	closed  atomic.Bool
}

type guardLimits struct {
	maxChunkSize    uint32 // largest SetChunkSize accepted
	maxMessageSize  uint32 // largest audio/video message
	maxChunkStreams int
	preAuthBytes    int64  // chunk-layer bytes allowed before publish is authorized
	preAuthMessage  uint32 // largest message before authorization
	maxAMFMessage   uint32 // largest command/data message
}

// chunkStream is the receive state of one chunk stream id.
type chunkStream struct {
	ts         uint32 // timestamp of the current (or last) message
	delta      uint32 // delta reused by a type-3 header that starts a message
	ext        bool   // the last header carried an extended timestamp
	length     uint32
	typ        uint8
	msid       uint32
	inProgress bool
	buf        []byte
}

const (
	handshakeSize   = 1 + 1536 + 1536 // C0, C1, C2
	rtmpVersion     = 3
	forwardChunkMax = 0xffffff // chunk size announced to go-rtmp: one chunk per message
	maxControlMsg   = 64
	minAckWindow    = 4096
	releaseBufCap   = 1 << 20
)

// RTMP message type ids.
const (
	msgSetChunkSize  = 1
	msgAbort         = 2
	msgAck           = 3
	msgUserControl   = 4
	msgWinAckSize    = 5
	msgSetPeerBW     = 6
	msgAudio         = 8
	msgVideo         = 9
	msgDataAMF3      = 15
	msgSharedObjAMF3 = 16
	msgCommandAMF3   = 17
	msgDataAMF0      = 18
	msgSharedObjAMF0 = 19
	msgCommandAMF0   = 20
	msgAggregate     = 22
)

func newGuard(nc net.Conn, lim guardLimits, idle time.Duration, onClose func()) *guard {
	g := &guard{
		nc:        nc,
		lim:       lim,
		idle:      idle,
		hsLeft:    handshakeSize,
		chunkSize: 128, // RTMP default until the peer says otherwise
		streams:   make(map[uint32]*chunkStream),
		onClose:   onClose,
	}
	g.br = bufio.NewReaderSize(deadlineReader{g}, 32<<10)
	return g
}

// authorize lifts the pre-publish limits: from now on media flows and the
// connection lives as long as it keeps sending.
func (g *guard) authorize() { g.authorized.Store(true) }

// Err is the error that ended reading, if any.
func (g *guard) Err() error { return g.err }

type deadlineReader struct{ g *guard }

// Read refreshes the idle deadline once publishing. Before that the
// absolute handshake deadline set at accept time applies.
func (d deadlineReader) Read(p []byte) (int, error) {
	if d.g.authorized.Load() {
		_ = d.g.nc.SetReadDeadline(time.Now().Add(d.g.idle))
	}
	return d.g.nc.Read(p)
}

// Write is go-rtmp's write path (handshake replies, command results).
func (g *guard) Write(p []byte) (int, error) {
	if g.authorized.Load() {
		_ = g.nc.SetWriteDeadline(time.Now().Add(g.idle))
	}
	return g.nc.Write(p)
}

// Close is called by go-rtmp once, last, when the connection ends.
func (g *guard) Close() error {
	if g.closed.Swap(true) {
		return nil
	}
	err := g.nc.Close()
	if g.onClose != nil {
		g.onClose()
	}
	return err
}

func (g *guard) fail(err error) error {
	if g.err == nil {
		g.err = err
	}
	return g.err
}

// Read hands go-rtmp the handshake bytes, then sanitized chunks.
func (g *guard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if g.hsLeft > 0 {
		if len(p) > g.hsLeft {
			p = p[:g.hsLeft]
		}
		n, err := g.br.Read(p)
		if n > 0 && g.hsLeft == handshakeSize && p[0] != rtmpVersion {
			return 0, g.fail(fmt.Errorf("handshake: version byte 0x%02x, want 3 (not an RTMP client)", p[0]))
		}
		g.hsLeft -= n
		if g.hsLeft == 0 {
			// Announce the largest chunk size so every message we
			// forward is one chunk.
			g.emit(0, msgSetChunkSize, 0, binary.BigEndian.AppendUint32(nil, forwardChunkMax))
		}
		if err != nil {
			return n, g.fail(fmt.Errorf("handshake: %w", err))
		}
		return n, nil
	}
	for g.outPos >= len(g.out) {
		g.out, g.outPos = g.out[:0], 0
		if err := g.readChunk(); err != nil {
			return 0, g.fail(err)
		}
	}
	n := copy(p, g.out[g.outPos:])
	g.outPos += n
	return n, nil
}

func (g *guard) readFull(b []byte) error {
	_, err := io.ReadFull(g.br, b)
	if err != nil {
		return err
	}
	g.consumed += int64(len(b))
	if !g.authorized.Load() && g.consumed > g.lim.preAuthBytes {
		return fmt.Errorf("chunk: %d bytes before publishing, limit %d", g.consumed, g.lim.preAuthBytes)
	}
	return nil
}

func uint24(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }

// readChunk reads one chunk; a completed message is processed (and
// possibly appended to g.out).
func (g *guard) readChunk() error {
	h := g.hdr[:]
	if err := g.readFull(h[:1]); err != nil {
		return err
	}
	fmtType := h[0] >> 6
	csid := uint32(h[0] & 0x3f)
	switch csid {
	case 0:
		if err := g.readFull(h[1:2]); err != nil {
			return err
		}
		csid = 64 + uint32(h[1])
	case 1:
		if err := g.readFull(h[1:3]); err != nil {
			return err
		}
		csid = 64 + uint32(h[1]) + uint32(h[2])*256
	}
	cs := g.streams[csid]
	if cs == nil {
		if fmtType != 0 {
			return fmt.Errorf("chunk: stream %d starts with a type-%d header", csid, fmtType)
		}
		if len(g.streams) >= g.lim.maxChunkStreams {
			return fmt.Errorf("chunk: more than %d chunk streams", g.lim.maxChunkStreams)
		}
		cs = &chunkStream{}
		g.streams[csid] = cs
	}
	if cs.inProgress && fmtType != 3 {
		return fmt.Errorf("chunk: stream %d: type-%d header inside a message", csid, fmtType)
	}
	var tsField uint32
	switch fmtType {
	case 0:
		if err := g.readFull(h[:11]); err != nil {
			return err
		}
		tsField = uint24(h[0:3])
		cs.length = uint24(h[3:6])
		cs.typ = h[6]
		cs.msid = binary.LittleEndian.Uint32(h[7:11])
	case 1:
		if err := g.readFull(h[:7]); err != nil {
			return err
		}
		tsField = uint24(h[0:3])
		cs.length = uint24(h[3:6])
		cs.typ = h[6]
	case 2:
		if err := g.readFull(h[:3]); err != nil {
			return err
		}
		tsField = uint24(h[0:3])
	}
	if fmtType != 3 {
		cs.ext = tsField == 0xffffff
		if cs.ext {
			if err := g.readFull(h[:4]); err != nil {
				return err
			}
			tsField = binary.BigEndian.Uint32(h[:4])
		}
		if fmtType == 0 {
			// RTMP spec 5.3.1.2.4: a type-3 chunk after a type-0 one
			// uses the type-0 timestamp as its delta.
			cs.ts, cs.delta = tsField, tsField
		} else {
			cs.delta = tsField
			cs.ts += tsField
		}
	} else {
		if cs.ext {
			// ffmpeg and librtmp repeat the extended timestamp on
			// type-3 chunks when the previous header had one.
			if err := g.readFull(h[:4]); err != nil {
				return err
			}
		}
		if !cs.inProgress {
			cs.ts += cs.delta
		}
	}

	if !cs.inProgress {
		if cs.length == 0 {
			return nil // empty message: nothing to forward
		}
		if limit := g.messageLimit(cs.typ); cs.length > limit {
			return fmt.Errorf("chunk: message type %d of %d bytes, limit %d", cs.typ, cs.length, limit)
		}
		cs.inProgress = true
		if cs.buf == nil {
			cs.buf = make([]byte, 0, min(cs.length, 64<<10))
		}
		cs.buf = cs.buf[:0]
	}
	n := min(g.chunkSize, cs.length-uint32(len(cs.buf)))
	if g.buffered+int(n) > 2*int(g.lim.maxMessageSize) {
		return fmt.Errorf("chunk: %d bytes held in partial messages", g.buffered+int(n))
	}
	start := len(cs.buf)
	cs.buf = append(cs.buf, make([]byte, n)...)
	if err := g.readFull(cs.buf[start:]); err != nil {
		return err
	}
	g.buffered += int(n)
	if uint32(len(cs.buf)) < cs.length {
		return nil
	}
	g.buffered -= len(cs.buf)
	cs.inProgress = false
	err := g.message(cs)
	if cap(cs.buf) > releaseBufCap {
		cs.buf = nil // do not keep a keyframe-sized buffer per chunk stream
	}
	return err
}

func (g *guard) messageLimit(typ uint8) uint32 {
	switch {
	case typ >= msgSetChunkSize && typ <= msgSetPeerBW:
		return maxControlMsg
	case !g.authorized.Load():
		return g.lim.preAuthMessage
	case typ == msgAudio || typ == msgVideo:
		return g.lim.maxMessageSize
	}
	return g.lim.maxAMFMessage
}

// message processes one complete message.
func (g *guard) message(cs *chunkStream) error {
	p := cs.buf
	switch cs.typ {
	case msgSetChunkSize:
		if len(p) != 4 {
			return fmt.Errorf("chunk: SetChunkSize of %d bytes", len(p))
		}
		v := binary.BigEndian.Uint32(p)
		if v == 0 || v&0x80000000 != 0 {
			return fmt.Errorf("chunk: invalid chunk size 0x%x", v)
		}
		if v > g.lim.maxChunkSize {
			return fmt.Errorf("chunk: chunk size %d exceeds the limit %d", v, g.lim.maxChunkSize)
		}
		g.chunkSize = v
		return nil
	case msgAbort:
		if len(p) != 4 {
			return fmt.Errorf("chunk: Abort of %d bytes", len(p))
		}
		if s := g.streams[binary.BigEndian.Uint32(p)]; s != nil && s.inProgress {
			g.buffered -= len(s.buf)
			s.inProgress = false
			s.buf = s.buf[:0]
		}
		return nil
	case msgWinAckSize:
		if len(p) != 4 {
			return fmt.Errorf("chunk: WindowAckSize of %d bytes", len(p))
		}
		// A tiny window would make go-rtmp acknowledge every chunk.
		if binary.BigEndian.Uint32(p) < minAckWindow {
			binary.BigEndian.PutUint32(p, minAckWindow)
		}
	case msgAck, msgUserControl, msgSetPeerBW:
	case msgAudio, msgVideo:
		if !g.authorized.Load() {
			return nil // no media before the key is checked
		}
	case msgDataAMF0, msgCommandAMF0:
		vals, err := flv.DecodeAMF0(p)
		if err != nil {
			return fmt.Errorf("chunk: message type %d: %w", cs.typ, err)
		}
		// go-rtmp only hands metadata to us as @setDataFrame; some
		// encoders send a bare onMetaData. Wrap it.
		if cs.typ == msgDataAMF0 && len(vals) > 0 && vals[0] == "onMetaData" {
			wrapped := append([]byte{0x02, 0, 13}, "@setDataFrame"...)
			g.emit(cs.ts, cs.typ, cs.msid, append(wrapped, p...))
			return nil
		}
	case msgDataAMF3, msgSharedObjAMF3, msgCommandAMF3:
		return fmt.Errorf("chunk: AMF3 message type %d is not supported", cs.typ)
	case msgSharedObjAMF0, msgAggregate:
		return fmt.Errorf("chunk: message type %d is not supported", cs.typ)
	default:
		return fmt.Errorf("chunk: unknown message type %d", cs.typ)
	}
	g.emit(cs.ts, cs.typ, cs.msid, p)
	return nil
}

// emit appends one message to g.out as a single type-0 chunk.
//
// The chunk stream id is chosen by message type, not copied from the peer:
// go-rtmp keeps a reassembly buffer per chunk stream id for good (so a
// publisher spreading keyframes over many ids would pin that many
// buffers), and it over-reads 3-byte basic headers (ids >= 320). Each
// forwarded message is a complete type-0 chunk, so go-rtmp needs no state
// across messages and the original id does not matter; replies simply go
// out on these ids.
func (g *guard) emit(ts uint32, typ uint8, msid uint32, payload []byte) {
	csid := byte(3) // commands and data
	switch typ {
	case msgSetChunkSize, msgAbort, msgAck, msgUserControl, msgWinAckSize, msgSetPeerBW:
		csid = 2
	case msgAudio:
		csid = 4
	case msgVideo:
		csid = 6
	}
	o := append(g.out, csid)
	tsField := min(ts, 0xffffff)
	l := uint32(len(payload))
	o = append(o, byte(tsField>>16), byte(tsField>>8), byte(tsField),
		byte(l>>16), byte(l>>8), byte(l), typ)
	o = binary.LittleEndian.AppendUint32(o, msid)
	if tsField == 0xffffff {
		o = binary.BigEndian.AppendUint32(o, ts)
	}
	g.out = append(o, payload...)
}
