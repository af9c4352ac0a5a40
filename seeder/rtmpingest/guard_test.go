package rtmpingest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	rtmp "github.com/yutopp/go-rtmp"
	"github.com/yutopp/go-rtmp/message"

	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/flv"
)

// memConn is a net.Conn reading from a fixed buffer.
type memConn struct {
	r *bytes.Reader
}

func (m *memConn) Read(p []byte) (int, error)       { return m.r.Read(p) }
func (m *memConn) Write(p []byte) (int, error)      { return len(p), nil }
func (m *memConn) Close() error                     { return nil }
func (m *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (m *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (m *memConn) SetDeadline(time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }

var testLimits = guardLimits{
	maxChunkSize:    1 << 16,
	maxMessageSize:  1 << 20,
	maxChunkStreams: 8,
	preAuthBytes:    1 << 14,
	preAuthMessage:  4096,
	maxAMFMessage:   4096,
}

func validHandshake() []byte {
	b := make([]byte, handshakeSize)
	b[0] = 3
	return b
}

// seen is one message as go-rtmp decoded it from the guard's output.
type seen struct {
	csid    int
	ts      uint32
	typ     message.TypeID
	payload []byte // audio/video payload or command/data name
}

// runGuard feeds in (after a valid handshake) through a guard and decodes
// the output with go-rtmp's own chunk reader, the way the server does.
func runGuard(t *testing.T, in []byte, authorized bool) ([]seen, error) {
	t.Helper()
	g := newGuard(&memConn{r: bytes.NewReader(append(validHandshake(), in...))}, testLimits, time.Second, nil)
	if authorized {
		g.authorize()
	}
	hs := make([]byte, handshakeSize)
	if _, err := io.ReadFull(g, hs); err != nil {
		t.Fatalf("handshake pass-through: %v", err)
	}
	if !bytes.Equal(hs, validHandshake()) {
		t.Fatal("handshake bytes altered")
	}
	cs := rtmp.NewChunkStreamer(g, io.Discard, nil)
	defer cs.Close()
	var out []seen
	for i := 0; i < 1000; i++ {
		var cm rtmp.ChunkMessage
		csid, ts, err := cs.Read(&cm)
		if err != nil {
			if errors.Is(err, io.EOF) && g.Err() == io.EOF {
				return out, nil
			}
			if g.Err() != nil {
				return out, g.Err()
			}
			return out, err
		}
		s := seen{csid: csid, ts: ts, typ: cm.Message.TypeID()}
		switch m := cm.Message.(type) {
		case *message.SetChunkSize:
			if err := cs.PeerState().SetChunkSize(m.ChunkSize); err != nil {
				t.Fatalf("go-rtmp refused the guard's chunk size: %v", err)
			}
			continue // the guard's own announcement
		case *message.VideoMessage:
			s.payload, _ = io.ReadAll(m.Payload)
		case *message.AudioMessage:
			s.payload, _ = io.ReadAll(m.Payload)
		case *message.CommandMessage:
			s.payload = []byte(m.CommandName)
		case *message.DataMessage:
			s.payload = []byte(m.Name)
		}
		out = append(out, s)
	}
	t.Fatal("runaway")
	return nil, nil
}

func TestGuardHandshake(t *testing.T) {
	g := newGuard(&memConn{r: bytes.NewReader([]byte("GET / HTTP/1.1\r\n"))}, testLimits, time.Second, nil)
	_, err := g.Read(make([]byte, 1))
	if err == nil || !strings.Contains(err.Error(), "version byte 0x47") {
		t.Fatalf("HTTP request on the RTMP port: %v", err)
	}
	if _, err2 := g.Read(make([]byte, 1)); err2 != err {
		t.Fatal("error not sticky")
	}
	// A half handshake ends in EOF, reported as a handshake error.
	g = newGuard(&memConn{r: bytes.NewReader(validHandshake()[:700])}, testLimits, time.Second, nil)
	_, err = io.ReadFull(g, make([]byte, handshakeSize))
	if err == nil || !strings.Contains(g.Err().Error(), "handshake") {
		t.Fatalf("half handshake: %v / %v", err, g.Err())
	}
}

func TestGuardChunkParsing(t *testing.T) {
	video := make([]byte, 300)
	for i := range video {
		video[i] = byte(i)
	}
	cw := &chunkWriter{chunkSize: 128}
	hdr := func(fmtType byte, csid uint32, fields ...byte) []byte {
		return append(basicHeader(fmtType, csid), fields...)
	}
	tests := []struct {
		name       string
		in         []byte
		authorized bool
		want       []seen
		wantErr    string
	}{
		{
			name:       "message split in 128-byte chunks is reassembled",
			in:         cw.message(6, 1000, 9, 1, video),
			authorized: true,
			want:       []seen{{csid: 6, ts: 1000, typ: 9, payload: video}},
		},
		{
			name: "peer chunk size honoured and not forwarded",
			in: append(cw.message(2, 0, 1, 0, setChunkSizeMsg(256)),
				(&chunkWriter{chunkSize: 256}).message(6, 5, 9, 1, video)...),
			authorized: true,
			want:       []seen{{csid: 6, ts: 5, typ: 9, payload: video}},
		},
		{
			name: "delta headers: type 1, type 2, type 3 after type 0 (spec 5.3.1.2.4)",
			in: bytes.Join([][]byte{
				hdr(0, 4, 0, 0, 40, 0, 0, 1, 8, 1, 0, 0, 0, 0xaa), // ts 40 abs
				hdr(3, 4, 0xab),                                      // new msg: delta = 40 → 80
				hdr(2, 4, 0, 0, 21, 0xac),                            // delta 21 → 101
				hdr(3, 4, 0xad),                                      // delta 21 → 122
				hdr(1, 4, 0, 0, 22, 0, 0, 2, 8, 0xae, 0xaf),          // delta 22, len 2 → 144
				hdr(0, 0x140, 0, 0, 7, 0, 0, 1, 9, 1, 0, 0, 0, 0x17), // 3-byte csid 320
				hdr(0, 70, 0xff, 0xff, 0xff, 0, 0, 1, 9, 1, 0, 0, 0, 1, 0, 0, 0, 0x27), // 2-byte csid, ext ts 2^24
			}, nil),
			authorized: true,
			want: []seen{
				{csid: 4, ts: 40, typ: 8, payload: []byte{0xaa}},
				{csid: 4, ts: 80, typ: 8, payload: []byte{0xab}},
				{csid: 4, ts: 101, typ: 8, payload: []byte{0xac}},
				{csid: 4, ts: 122, typ: 8, payload: []byte{0xad}},
				{csid: 4, ts: 144, typ: 8, payload: []byte{0xae, 0xaf}},
				{csid: 6, ts: 7, typ: 9, payload: []byte{0x17}}, // ids chosen by type, see emit
				{csid: 6, ts: 1 << 24, typ: 9, payload: []byte{0x27}},
			},
		},
		{
			name: "extended timestamp repeated on continuation chunks (ffmpeg after 4.6 h)",
			in: append(cw.message(6, 0x01000000, 9, 1, video),
				cw.message(6, 0x01000021, 9, 1, video[:10])...),
			authorized: true,
			want: []seen{
				{csid: 6, ts: 0x01000000, typ: 9, payload: video},
				{csid: 6, ts: 0x01000021, typ: 9, payload: video[:10]},
			},
		},
		{
			name: "abort discards a partial message",
			in: bytes.Join([][]byte{
				hdr(0, 6, 0, 0, 0, 0, 1, 0, 9, 1, 0, 0, 0), make([]byte, 128), // 256-byte msg, half sent
				cw.message(2, 0, 2, 0, []byte{0, 0, 0, 6}), // abort csid 6
				hdr(0, 6, 0, 0, 9, 0, 0, 1, 9, 1, 0, 0, 0, 0x17),
			}, nil),
			authorized: true,
			want:       []seen{{csid: 6, ts: 9, typ: 9, payload: []byte{0x17}}},
		},
		{
			name:       "media before authorization is dropped, commands pass",
			in:         append(cw.message(6, 0, 9, 1, []byte{0x17, 0}), cw.message(3, 0, 20, 0, amf(nil).str("connect").num(1).obj("app", "live"))...),
			authorized: false,
			want:       []seen{{csid: 3, ts: 0, typ: 20, payload: []byte("connect")}},
		},
		{
			name:       "bare onMetaData is wrapped in @setDataFrame",
			in:         cw.message(5, 0, 18, 1, amf(nil).str("onMetaData").obj("encoder", "x")),
			authorized: true,
			want:       []seen{{csid: 3, ts: 0, typ: 18, payload: []byte("@setDataFrame")}},
		},
		{
			name:       "empty message is skipped",
			in:         append(hdr(0, 6, 0, 0, 1, 0, 0, 0, 9, 1, 0, 0, 0), cw.message(6, 2, 9, 1, []byte{1})...),
			authorized: true,
			want:       []seen{{csid: 6, ts: 2, typ: 9, payload: []byte{1}}},
		},
		{name: "chunk size above the limit", in: cw.message(2, 0, 1, 0, setChunkSizeMsg(0x7fffffff)), wantErr: "chunk size"},
		{name: "chunk size zero", in: cw.message(2, 0, 1, 0, setChunkSizeMsg(0)), wantErr: "invalid chunk size"},
		{name: "chunk size with the top bit", in: cw.message(2, 0, 1, 0, setChunkSizeMsg(0x80000080)), wantErr: "invalid chunk size"},
		{name: "first header on a chunk stream is not type 0", in: hdr(1, 5, 0, 0, 0, 0, 0, 1, 9, 0), wantErr: "starts with a type-1"},
		{name: "new header inside a message", in: bytes.Join([][]byte{hdr(0, 6, 0, 0, 0, 0, 1, 0, 9, 1, 0, 0, 0), make([]byte, 128), hdr(2, 6, 0, 0, 0)}, nil), authorized: true, wantErr: "inside a message"},
		{name: "video message above the limit", in: hdr(0, 6, 0, 0, 0, 0x10, 0, 1, 9, 1, 0, 0, 0), authorized: true, wantErr: "limit"},
		{name: "large message before publishing", in: hdr(0, 6, 0, 0, 0, 0, 0x20, 0, 9, 1, 0, 0, 0), wantErr: "limit"},
		{name: "too many bytes before publishing", in: bytes.Repeat(cw.message(6, 0, 9, 1, make([]byte, 4000)), 5), wantErr: "before publishing"},
		{name: "AMF strict array bomb", in: cw.message(3, 0, 20, 0, append(amf(nil).str("connect").num(1), 0x0a, 0x7f, 0xff, 0xff, 0xff)), wantErr: "strict array"},
		{name: "AMF nesting bomb", in: cw.message(3, 0, 18, 0, bytes.Repeat([]byte{0x0a, 0, 0, 0, 1}, 100)), wantErr: "nesting"},
		{name: "AMF3 command", in: cw.message(3, 0, 17, 0, []byte{0}), wantErr: "AMF3"},
		{name: "aggregate message", in: cw.message(3, 0, 22, 1, []byte{0}), authorized: true, wantErr: "not supported"},
		{name: "unknown message type", in: cw.message(3, 0, 99, 1, []byte{0}), wantErr: "unknown message type"},
		{name: "oversized control message", in: cw.message(2, 0, 4, 0, make([]byte, 100)), wantErr: "limit"},
		{name: "truncated header", in: []byte{0x06, 0, 0}, wantErr: "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runGuard(t, tt.in, tt.authorized)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d messages %+v, want %d", len(got), got, len(tt.want))
			}
			for i, w := range tt.want {
				g := got[i]
				if g.csid != w.csid || g.ts != w.ts || g.typ != w.typ || !bytes.Equal(g.payload, w.payload) {
					t.Errorf("message %d: csid %d ts %d type %d payload %d bytes; want csid %d ts %d type %d payload %d bytes",
						i, g.csid, g.ts, g.typ, len(g.payload), w.csid, w.ts, w.typ, len(w.payload))
				}
			}
		})
	}
}

func TestGuardTooManyChunkStreams(t *testing.T) {
	cw := &chunkWriter{}
	var in []byte
	for i := 0; i <= testLimits.maxChunkStreams; i++ {
		in = append(in, cw.message(uint32(3+i), 0, 9, 1, []byte{1})...)
	}
	if _, err := runGuard(t, in, true); err == nil || !strings.Contains(err.Error(), "chunk streams") {
		t.Fatalf("err = %v", err)
	}
}

func TestGuardWindowAckClamped(t *testing.T) {
	cw := &chunkWriter{}
	g := newGuard(&memConn{r: bytes.NewReader(append(validHandshake(), cw.message(2, 0, 5, 0, []byte{0, 0, 0, 1})...))}, testLimits, time.Second, nil)
	_, _ = io.ReadFull(g, make([]byte, handshakeSize))
	out, _ := io.ReadAll(g)
	// The synthetic SetChunkSize (16 bytes), then the forwarded WinAckSize.
	if len(out) != 32 || binary.BigEndian.Uint32(out[28:]) != minAckWindow {
		t.Fatalf("forwarded %x", out)
	}
}

func FuzzGuard(f *testing.F) {
	cw := &chunkWriter{chunkSize: 128}
	f.Add(cw.message(6, 1000, 9, 1, make([]byte, 300)), true)
	f.Add(cw.message(3, 0, 20, 0, amf(nil).str("connect").num(1).obj("app", "live")), false)
	f.Add(append(cw.message(2, 0, 1, 0, setChunkSizeMsg(4096)), cw.message(6, 0xffffff, 9, 1, make([]byte, 5000))...), true)
	f.Add([]byte{0xc6, 0x46, 0, 0, 0}, true)
	f.Fuzz(func(t *testing.T, in []byte, authorized bool) {
		g := newGuard(&memConn{r: bytes.NewReader(append(validHandshake(), in...))}, testLimits, time.Second, nil)
		if authorized {
			g.authorize()
		}
		if _, err := io.ReadFull(g, make([]byte, handshakeSize)); err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(g)
		if len(out) > 2*len(in)+64 {
			t.Fatalf("%d bytes out of %d in", len(out), len(in))
		}
		// Framing invariant: the output is whole type-0 chunks with a
		// one-byte basic header, each a complete message at the chunk
		// size announced first (what go-rtmp can read).
		for pos := 0; pos < len(out); {
			if len(out)-pos < 12 || out[pos]>>6 != 0 || out[pos]&0x3f < 2 {
				t.Fatalf("bad chunk header at %d: %x", pos, out[pos:min(pos+12, len(out))])
			}
			l := int(out[pos+4])<<16 | int(out[pos+5])<<8 | int(out[pos+6])
			hdrLen := 12
			if out[pos+1] == 0xff && out[pos+2] == 0xff && out[pos+3] == 0xff {
				hdrLen += 4
			}
			if l == 0 || pos+hdrLen+l > len(out) {
				t.Fatalf("chunk at %d claims %d bytes, %d left", pos, l, len(out)-pos-hdrLen)
			}
			pos += hdrLen + l
		}
		// And go-rtmp must not panic on it (its errors are fine: the
		// connection would close).
		cs := rtmp.NewChunkStreamer(bytes.NewReader(out), io.Discard, nil)
		defer cs.Close()
		for i := 0; i < 10000; i++ {
			var cm rtmp.ChunkMessage
			if _, _, err := cs.Read(&cm); err != nil {
				return
			}
			if sc, ok := cm.Message.(*message.SetChunkSize); ok {
				_ = cs.PeerState().SetChunkSize(sc.ChunkSize)
			}
		}
	})
}

// repeatReader serves prefix once, then unit forever.
type repeatReader struct {
	prefix, unit []byte
	pos          int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.prefix) > 0 {
			c := copy(p[n:], r.prefix)
			r.prefix = r.prefix[c:]
			n += c
			continue
		}
		c := copy(p[n:], r.unit[r.pos:])
		r.pos = (r.pos + c) % len(r.unit)
		n += c
	}
	return n, nil
}

// BenchmarkIngestPipeline measures the per-connection read path: chunk
// parsing in the guard, go-rtmp's reader, the per-message copy and the FLV
// conversion, for 24 KiB video frames in 4 KiB chunks (ffmpeg's default).
func BenchmarkIngestPipeline(b *testing.B) {
	const chunk = 4096
	frame := avcFrame(false, 33, 24<<10)
	cw := &chunkWriter{chunkSize: chunk}
	prefix := append(validHandshake(), cw.message(2, 0, 1, 0, setChunkSizeMsg(chunk))...)
	prefix = append(prefix, cw.message(6, 0, 9, 1, avcSeqHeader())...)
	prefix = append(prefix, cw.message(6, 0, 9, 1, avcFrame(true, 0, 100))...)
	// Every further frame: a type-3 header reusing the last delta. Set
	// that delta to 33 ms with one type-1 header first.
	first := append(basicHeader(1, 6), 0, 0, 33, byte(len(frame)>>16), byte(len(frame)>>8), byte(len(frame)), 9)
	for off := 0; off < len(frame); off += chunk {
		if off > 0 {
			first = append(first, basicHeader(3, 6)...)
		}
		first = append(first, frame[off:min(off+chunk, len(frame))]...)
	}
	prefix = append(prefix, first...)
	var unit []byte
	for off := 0; off < len(frame); off += chunk {
		unit = append(unit, basicHeader(3, 6)...)
		unit = append(unit, frame[off:min(off+chunk, len(frame))]...)
	}
	lim := testLimits
	lim.maxChunkSize = chunk
	g := newGuard(&memConn{}, lim, time.Second, nil)
	g.br.Reset(&repeatReader{prefix: prefix, unit: unit})
	g.authorize()
	if _, err := io.ReadFull(g, make([]byte, handshakeSize)); err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReaderSize(g, 16<<10)
	cs := rtmp.NewChunkStreamer(br, io.Discard, nil)
	defer func() { cs.Close() }()
	conv := flv.NewConverter(flv.Config{Sink: discard{}})
	var scratch bytes.Buffer
	read := func() {
		var cm rtmp.ChunkMessage
		_, ts, err := cs.Read(&cm)
		if err != nil {
			b.Fatal(err)
		}
		switch m := cm.Message.(type) {
		case *message.SetChunkSize:
			_ = cs.PeerState().SetChunkSize(m.ChunkSize)
		case *message.VideoMessage:
			scratch.Reset()
			_, _ = scratch.ReadFrom(m.Payload)
			if err := conv.Video(ts, bytes.Clone(scratch.Bytes())); err != nil {
				b.Fatal(err)
			}
		}
	}
	for i := 0; i < 3; i++ { // our SetChunkSize (the peer's is consumed), header, IDR
		read()
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%10000 == 9999 {
			// go-rtmp acknowledges every GiB through a control stream
			// this bare reader lacks: start a fresh one in time.
			cs.Close()
			cs = rtmp.NewChunkStreamer(br, io.Discard, nil)
			_ = cs.PeerState().SetChunkSize(forwardChunkMax)
		}
		read()
	}
	b.StopTimer()
	if st := conv.Stats(); st.VideoAUs != uint64(b.N)+1 || st.Discontinuities != 0 {
		b.Fatalf("stats %+v after %d frames", st, b.N)
	}
}

type discard struct{}

func (discard) VideoConfig(media.VideoConfig) error { return nil }
func (discard) AudioConfig(media.AudioConfig) error { return nil }
func (discard) WriteAU(media.AccessUnit) error      { return nil }
