package seeder

import (
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
	// Wait bounds a blocking request for a chunk that is about to exist and
	// a blocking playlist reload (default 3 s).
	Wait time.Duration
	Log  *slog.Logger

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
		o.streams[name] = s
	}
	s.public = public
	return s.w
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
	mux.HandleFunc("GET /hls/{stream}/index.m3u8", o.playlist)
	mux.HandleFunc("GET /hls/{stream}/init/{file}", o.hlsInit)
	mux.HandleFunc("GET /hls/{stream}/p/{epoch}/{file}", o.hlsPart)
	mux.HandleFunc("GET /hls/{stream}/s/{epoch}/{file}", o.hlsSegment)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Chunks are sealed and HLS is public: any page may fetch them.
		w.Header().Set("Access-Control-Allow-Origin", "*")
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
		http.Error(w, "no such stream on this seeder", http.StatusNotFound)
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
	writeBytes(w, "application/octet-stream", e.Sealed)
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

func (o *Origin) playlist(w http.ResponseWriter, r *http.Request) {
	s, ok := o.publicStream(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	if msnStr := q.Get("_HLS_msn"); msnStr != "" {
		msn, err := strconv.ParseUint(msnStr, 10, 64)
		part := -1
		if ps := q.Get("_HLS_part"); ps != "" && err == nil {
			part, err = strconv.Atoi(ps)
		}
		if err != nil || part < -1 {
			http.Error(w, "bad _HLS_msn or _HLS_part", http.StatusBadRequest)
			return
		}
		if !o.waitFor(r, s.w, msn, part) {
			http.Error(w, "requested segment is not coming soon", http.StatusBadRequest)
			return
		}
	}
	info, chunks, ok := s.w.Current()
	var text string
	if ok {
		text, ok = playlist(info, chunks)
	}
	if !ok {
		http.Error(w, "stream has not been published yet", http.StatusNotFound)
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	_, _ = w.Write([]byte(text))
}

// waitFor blocks a playlist reload until segment msn's part exists. It
// refuses (false) a request more than two segments ahead, as the spec asks.
func (o *Origin) waitFor(r *http.Request, win *Window, msn uint64, part int) bool {
	deadline := time.NewTimer(o.Wait)
	defer deadline.Stop()
	for {
		ch := win.Changed()
		info, chunks, ok := win.Current()
		if ok {
			if hasPart(info, chunks, msn, part) {
				return true
			}
			if segs := segmentsOf(chunks); len(segs) > 0 && msn > segs[len(segs)-1].msn+2 {
				return false
			}
		}
		select {
		case <-ch:
		case <-deadline.C:
			return true // answer with what there is; the player retries
		case <-r.Context().Done():
			return true
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
		http.Error(w, "no such init", http.StatusNotFound)
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
		http.Error(w, "no such part", http.StatusNotFound)
		return
	}
	w.Header().Set("Cache-Control", immutable)
	writeBytes(w, "video/iso.segment", e.Plain)
}

func (o *Origin) hlsSegment(w http.ResponseWriter, r *http.Request) {
	s, epoch, seq, ok := o.hlsMedia(w, r, "segment")
	if !ok {
		return
	}
	info, chunks, ok := s.w.Current()
	if !ok || info.Epoch != uint32(epoch) {
		http.Error(w, "no such segment", http.StatusNotFound)
		return
	}
	b, ok := segmentBytes(info, chunks, seq)
	if !ok {
		http.Error(w, "no such segment", http.StatusNotFound)
		return
	}
	w.Header().Set("Cache-Control", immutable)
	writeBytes(w, "video/iso.segment", b)
}
