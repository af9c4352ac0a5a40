package turnserver

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/banyan-live/banyan/internal/ipkey"
)

// Timeouts for TCP and TLS control connections. pion sets none, so without these an idle or
// stalled client would hold a goroutine and a file descriptor forever.
const (
	// firstReadTimeout bounds how long a new connection may stay silent.
	firstReadTimeout = 10 * time.Second
	// idleTimeout bounds silence afterwards. Clients with an allocation send at least a
	// permission refresh every 5 minutes (and WebRTC consent checks every few seconds).
	idleTimeout = 10 * time.Minute
	// writeTimeout bounds a write to a client that stopped reading.
	writeTimeout = 10 * time.Second
)

// serverPacketConn wraps the UDP listening socket. pion's read loop ends for good on the
// first read error; this wrapper only lets "closed" through and rides out anything else
// (a transient ENOBUFS must not take TURN over UDP down).
type serverPacketConn struct {
	net.PacketConn
	s *Server
}

func (c *serverPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	c.s.inflight.Add(1)
	defer c.s.inflight.Add(-1)
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err == nil || errors.Is(err, net.ErrClosed) || c.s.closing.Load() {
			return n, addr, err
		}
		c.s.rate.logf("udp-read", slog.LevelWarn, "turn: UDP read error", slog.Any("err", err))
		time.Sleep(time.Millisecond)
	}
}

// trackedListener wraps a TCP listener: it keeps accepting through transient errors (pion's
// accept loop ends on the first error, so EMFILE would stop TURN over TCP for good), caps
// concurrent connections, sets read/write deadlines on each connection, remembers them so
// that Close can end them (pion's Close only closes the listener), and starts TLS when
// configured.
type trackedListener struct {
	net.Listener
	s   *Server
	tls *tls.Config // nil: plain TCP
}

func (l *trackedListener) Accept() (net.Conn, error) {
	l.s.inflight.Add(1)
	defer l.s.inflight.Add(-1)
	backoff := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.s.closing.Load() {
				return nil, err
			}
			l.s.rate.logf("tcp-accept", slog.LevelWarn, "turn: accept error", slog.Any("err", err))
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)

			continue
		}
		backoff = 5 * time.Millisecond
		tc := &trackedConn{Conn: c, s: l.s}
		if !l.s.addConn(tc) {
			_ = c.Close()

			continue
		}
		if l.tls != nil {
			// Hidden from pion on purpose: for a *tls.Conn it runs the handshake itself and,
			// when that fails, returns without closing the connection (a descriptor leak per
			// bad handshake). As a plain net.Conn the handshake happens on the first read,
			// under firstReadTimeout, and a failure ends pion's read loop, which closes it.
			return tlsControlConn{tls.Server(tc, l.tls)}, nil
		}

		return tc, nil
	}
}

// tlsControlConn hides *tls.Conn from pion (see trackedListener.Accept).
type tlsControlConn struct{ net.Conn }

// trackedConn is one TCP or TLS control connection (below TLS, when TLS is on).
type trackedConn struct {
	net.Conn
	s       *Server
	ip      ipkey.Key // per-address count it holds (set by addConn)
	started bool      // first read done; only touched by the connection's single reader

	closeOnce sync.Once
	closeErr  error
}

func (c *trackedConn) Read(p []byte) (int, error) {
	c.s.inflight.Add(1)
	defer c.s.inflight.Add(-1)
	timeout := idleTimeout
	if !c.started {
		timeout = firstReadTimeout
		c.started = true
	}
	if err := c.Conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return 0, err
	}

	return c.Conn.Read(p)
}

func (c *trackedConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return 0, err
	}

	return c.Conn.Write(p)
}

func (c *trackedConn) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = c.Conn.Close()
		c.s.removeConn(c)
	})

	return c.closeErr
}
