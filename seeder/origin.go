package seeder

import (
	"bytes"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/banyan-live/banyan/internal/httpx"
	"github.com/banyan-live/banyan/protocol"
)

// Origin serves the chunks and LL-HLS of every stream a seeder publishes,
// over plain HTTP. Everything under /chunks/ is sealed; what is immutable is
// marked so, so any CDN can cache it.
type Origin struct {
	// Wait bounds a blocking request for a chunk that is about to exist
	// (default 3 s), and a blocking playlist reload before the stream has
	// a target duration; after that a reload blocks for up to three target
	// durations (RFC 8216bis 6.2.5.2) and then answers 503.
	Wait time.Duration
	// EndGrace is how long after a publish ends its playlist stays live
	// (no EXT-X-ENDLIST), so a broadcaster reconnecting within it does not
	// end HLS playback (DefaultEndGrace when zero).
	EndGrace time.Duration
	// Now is the clock for EndGrace and the windows (time.Now when nil).
	// Set it before the first Stream call.
	Now func() time.Time
	Log *slog.Logger

	mu      sync.Mutex
	streams map[string]*originStream
}

type originStream struct {
	w      *Window
	public bool // LL-HLS in the clear is served only for public streams
}

// NewOrigin makes an empty origin.
func NewOrigin(log *slog.Logger) *Origin {
	if log == nil {
		log = slog.Default()
	}
	return &Origin{Wait: 3 * time.Second, Log: log, streams: make(map[string]*originStream)}
}

// Stream returns the window of stream name, creating it; public says
// whether LL-HLS is served in the clear.
func (o *Origin) Stream(name string, keep time.Duration, public bool) *Window {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.streams[name]
	if s == nil {
		s = &originStream{w: NewWindow(keep)}
		if o.Now != nil {
			s.w.SetClock(o.Now)
		}
		o.streams[name] = s
	}
	s.public = public
	return s.w
}

// SetPublic changes at once whether stream name's LL-HLS is served in
// the clear, for a stream the origin already has (a stream made private
// while live must stop serving clear HLS now, not at its next publish).
// It reports whether the origin had the stream.
func (o *Origin) SetPublic(name string, public bool) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.streams[name]
	if s != nil {
		s.public = public
	}
	return s != nil
}

func (o *Origin) lookup(name string) (*originStream, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s, ok := o.streams[name]
	return s, ok
}

// Close wakes every blocked request.
func (o *Origin) Close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.streams {
		s.w.Close()
	}
}

// Handler serves /chunks/ and /hls/.
func (o *Origin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /chunks/{stream}/live", o.live)
	mux.HandleFunc("GET /chunks/{stream}/init", o.currentInit)
	mux.HandleFunc("GET /chunks/{stream}/{epoch}/{seq}", o.chunk)
	mux.HandleFunc("OPTIONS /chunks/{stream}/{epoch}/{seq}", o.chunkPreflight)
	mux.HandleFunc("GET /hls/{stream}/index.m3u8", o.playlist)
	mux.HandleFunc("GET /hls/{stream}/main.m3u8", o.multivariant)
	mux.HandleFunc("GET /hls/{stream}/init/{file}", o.hlsInit)
	mux.HandleFunc("GET /hls/{stream}/p/{epoch}/{file}", o.hlsPart)
	mux.HandleFunc("GET /hls/{stream}/s/{epoch}/{file}", o.hlsSegment)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Chunks are sealed and HLS is public: any page may fetch them.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Expose-Headers", "Content-Range")
		mux.ServeHTTP(w, r)
	})
}

func (o *Origin) streamOf(w http.ResponseWriter, r *http.Request) (*originStream, bool) {
	name := r.PathValue("stream")
	if !protocol.ValidStream(name) {
		http.Error(w, "invalid stream name", http.StatusBadRequest)
		return nil, false
	}
	s, ok := o.lookup(name)
	if !ok {
		notFound(w, "no such stream on this seeder")
		return nil, false
	}
	return s, true
}

const immutable = "public, max-age=31536000, immutable"

func (o *Origin) live(w http.ResponseWriter, r *http.Request) {
	s, ok := o.streamOf(w, r)
	if !ok {
		return
	}
	l, ok := s.w.Live()
	if !ok {
		httpx.Error(w, http.StatusNotFound, "stream has not been published yet")
		return
	}
	httpx.WriteJSON(w, http.StatusOK, l)
}

func (o *Origin) currentInit(w http.ResponseWriter, r *http.Request) {
	s, ok := o.streamOf(w, r)
	if !ok {
		return
	}
	info, _, ok := s.w.Current()
	if !ok || info.Init == nil {
		http.Error(w, "stream has not been published yet", http.StatusNotFound)
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Banyan-Epoch", strconv.FormatUint(uint64(info.Epoch), 10))
	writeBytes(w, "application/octet-stream", info.Init.Sealed)
}

func (o *Origin) chunk(w http.ResponseWriter, r *http.Request) {
	s, ok := o.streamOf(w, r)
	if !ok {
		return
	}
	epoch, err1 := strconv.ParseUint(r.PathValue("epoch"), 10, 32)
	seq, err2 := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err1 != nil || err2 != nil {
		http.Error(w, "epoch and seq must be numbers", http.StatusBadRequest)
		return
	}
	e, ok := s.w.Get(uint32(epoch), seq, o.Wait)
	if !ok {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "chunk not available", http.StatusNotFound)
		return
	}
	w.Header().Set("Cache-Control", immutable)
	w.Header().Set("Content-Type", "application/octet-stream")
	// Ranges: a peer rescuing a chunk the mesh mostly delivered asks for
	// its missing pieces only (chunk.Gap).
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(e.Sealed))
}

// chunkPreflight answers a CORS preflight for a chunk: a page on another
// host may ask for a range (Range is safelisted only in newer browsers).
func (o *Origin) chunkPreflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET")
	h.Set("Access-Control-Allow-Headers", "Range")
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

func writeBytes(w http.ResponseWriter, ctype string, b []byte) {
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

func (o *Origin) publicStream(w http.ResponseWriter, r *http.Request) (*originStream, bool) {
	s, ok := o.streamOf(w, r)
	if ok && !s.public {
		http.Error(w, "this stream is private: HLS is not available", http.StatusForbidden)
		return nil, false
	}
	return s, ok
}

func (o *Origin) endGrace() time.Duration {
	if o.EndGrace > 0 {
		return o.EndGrace
	}
	return DefaultEndGrace
}

// notFound answers 404 with Cache-Control: no-store: what is missing now
// may exist in a moment, and no cache may remember otherwise.
func notFound(w http.ResponseWriter, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, msg, http.StatusNotFound)
}

func (o *Origin) playlist(w http.ResponseWriter, r *http.Request) {
	s, ok := o.publicStream(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	msnStr, partStr := q.Get("_HLS_msn"), q.Get("_HLS_part")
	if msnStr == "" && partStr != "" {
		http.Error(w, "_HLS_part without _HLS_msn", http.StatusBadRequest)
		return
	}
	skip := q.Get("_HLS_skip")
	if skip != "" && skip != "YES" && skip != "v2" {
		http.Error(w, "bad _HLS_skip", http.StatusBadRequest)
		return
	}
	if msnStr != "" {
		msn, err := strconv.ParseUint(msnStr, 10, 64)
		part := -1
		if partStr != "" && err == nil {
			part, err = strconv.Atoi(partStr)
		}
		if err != nil || part < -1 {
			http.Error(w, "bad _HLS_msn or _HLS_part", http.StatusBadRequest)
			return
		}
		switch o.waitFor(r, s.w, msn, part) {
		case waitTooFar:
			http.Error(w, "requested segment is not coming soon", http.StatusBadRequest)
			return
		case waitTimedOut:
			// Not a stale 200: the player would take it as the answer.
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "requested part did not arrive in time", http.StatusServiceUnavailable)
			return
		case waitGone:
			return
		}
	}
	var text string
	v, ok := s.w.hlsView()
	if ok {
		text, ok = v.playlist(o.endGrace(), skip != "")
	}
	if !ok {
		notFound(w, "stream has not been published yet")
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	_, _ = w.Write([]byte(text))
}

func (o *Origin) multivariant(w http.ResponseWriter, r *http.Request) {
	s, ok := o.publicStream(w, r)
	if !ok {
		return
	}
	var text string
	v, ok := s.w.hlsView()
	if ok {
		text, ok = v.multivariant()
	}
	if !ok {
		notFound(w, "stream has not been published yet")
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	_, _ = w.Write([]byte(text))
}

type waitResult int

const (
	waitReady waitResult = iota
	waitTooFar
	waitTimedOut
	waitGone // the client left
)

// waitFor blocks a playlist reload until segment msn's part exists, for at
// most three target durations (o.Wait before there is one). It refuses a
// request more than two segments ahead at once, as the spec asks, and
// wakes when the grace period of an ended publish runs out (the playlist
// with EXT-X-ENDLIST answers every request).
func (o *Origin) waitFor(r *http.Request, win *Window, msn uint64, part int) waitResult {
	var deadline <-chan time.Time
	for {
		ch := win.Changed()
		v, ok := win.hlsView()
		if ok {
			if v.hasPart(o.endGrace(), msn, part) {
				return waitReady
			}
			if v.tooFar(msn) {
				return waitTooFar
			}
		}
		if deadline == nil {
			limit := o.Wait
			if v.target > 0 {
				limit = 3 * v.target
			}
			t := time.NewTimer(limit)
			defer t.Stop()
			deadline = t.C
		}
		var graceEnd <-chan time.Time
		if d, ok := v.endsIn(o.endGrace()); ok {
			t := time.NewTimer(d)
			defer t.Stop()
			graceEnd = t.C
		}
		select {
		case <-ch:
		case <-graceEnd:
		case <-deadline:
			return waitTimedOut
		case <-r.Context().Done():
			return waitGone
		}
	}
}

// parseNumFile parses a file name "{n}{ext}".
func parseNumFile(file, ext string) (uint64, bool) {
	n, found := strings.CutSuffix(file, ext)
	if !found {
		return 0, false
	}
	v, err := strconv.ParseUint(n, 10, 64)
	return v, err == nil
}

func (o *Origin) hlsInit(w http.ResponseWriter, r *http.Request) {
	s, ok := o.publicStream(w, r)
	if !ok {
		return
	}
	epoch, ok := parseNumFile(r.PathValue("file"), ".mp4")
	if !ok || epoch > 1<<32-1 {
		http.Error(w, "bad init name", http.StatusBadRequest)
		return
	}
	e, ok := s.w.Get(uint32(epoch), 0, 0)
	if !ok || e.Plain == nil {
		notFound(w, "no such init")
		return
	}
	w.Header().Set("Cache-Control", immutable)
	writeBytes(w, "video/mp4", e.Plain)
}

// hlsMedia resolves /hls/{stream}/{p|s}/{epoch}/{n}.m4s: the public stream,
// its epoch and the chunk number, or an error reply naming what (a part or
// a segment) was badly named.
func (o *Origin) hlsMedia(w http.ResponseWriter, r *http.Request, what string) (*originStream, uint64, uint64, bool) {
	s, ok := o.publicStream(w, r)
	if !ok {
		return nil, 0, 0, false
	}
	epoch, err := strconv.ParseUint(r.PathValue("epoch"), 10, 32)
	seq, ok := parseNumFile(r.PathValue("file"), ".m4s")
	if err != nil || !ok {
		http.Error(w, "bad "+what+" name", http.StatusBadRequest)
		return nil, 0, 0, false
	}
	return s, epoch, seq, true
}

func (o *Origin) hlsPart(w http.ResponseWriter, r *http.Request) {
	s, epoch, seq, ok := o.hlsMedia(w, r, "part")
	if !ok {
		return
	}
	if seq == 0 {
		http.Error(w, "bad part name", http.StatusBadRequest)
		return
	}
	// A preload hint names the next part: block until it exists.
	e, ok := s.w.Get(uint32(epoch), seq, o.Wait)
	if !ok || e.Plain == nil {
		notFound(w, "no such part")
		return
	}
	tl, ok := s.w.hlsTimeline(uint32(epoch))
	if !ok {
		notFound(w, "no such part")
		return
	}
	b, err := tl.onTimeline(e.Plain)
	if err != nil {
		o.Log.Error("hls part", "epoch", epoch, "seq", seq, "err", err)
		http.Error(w, "part unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", immutable)
	writeBytes(w, "video/iso.segment", b)
}

func (o *Origin) hlsSegment(w http.ResponseWriter, r *http.Request) {
	s, epoch, seq, ok := o.hlsMedia(w, r, "segment")
	if !ok {
		return
	}
	v, _ := s.w.hlsView()
	b, ok, err := v.segmentBytes(uint32(epoch), seq)
	if !ok {
		notFound(w, "no such segment")
		return
	}
	if err != nil {
		o.Log.Error("hls segment", "epoch", epoch, "seq", seq, "err", err)
		http.Error(w, "segment unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", immutable)
	writeBytes(w, "video/iso.segment", b)
}
