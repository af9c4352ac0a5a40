package tlsconf

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// keyPair is a certificate and key read from files and read again when
// they change. The check rides on handshakes, rate limited, so no
// goroutine or watcher has to be owned; a rotation is seen by the first
// handshake at most ReloadCheck after it.
type keyPair struct {
	certFile, keyFile string
	every             time.Duration
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	certStamp stamp
	keyStamp  stamp
	checked   time.Time
}

// stamp is what says a file changed: an editor or certbot replacing it
// changes its size or modification time (or both).
type stamp struct {
	size int64
	mod  time.Time
}

func statStamp(path string) (stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	return stamp{fi.Size(), fi.ModTime()}, nil
}

func newKeyPair(certFile, keyFile string, every time.Duration, log *slog.Logger) (*keyPair, error) {
	if every <= 0 {
		every = time.Second
	}
	kp := &keyPair{certFile: certFile, keyFile: keyFile, every: every, log: log}
	if err := kp.load(); err != nil {
		return nil, err
	}
	kp.checked = time.Now()
	return kp, nil
}

// load reads both files; on error the certificate in use stays.
func (kp *keyPair) load() error {
	cs, err := statStamp(kp.certFile)
	if err != nil {
		return fmt.Errorf("tls: certificate file: %w", err)
	}
	ks, err := statStamp(kp.keyFile)
	if err != nil {
		return fmt.Errorf("tls: key file: %w", err)
	}
	c, err := tls.LoadX509KeyPair(kp.certFile, kp.keyFile)
	if err != nil {
		return fmt.Errorf("tls: load %s and %s: %w", kp.certFile, kp.keyFile, err)
	}
	kp.cert, kp.certStamp, kp.keyStamp = &c, cs, ks
	if c.Leaf != nil {
		kp.log.Info("tls: certificate loaded", "file", kp.certFile, "subject", c.Leaf.Subject.String(),
			"names", c.Leaf.DNSNames, "not_after", c.Leaf.NotAfter)
	}
	return nil
}

// get returns the current certificate, first reloading it if the files
// changed since the last look (at most once every kp.every).
func (kp *keyPair) get() (*tls.Certificate, error) {
	kp.mu.Lock()
	defer kp.mu.Unlock()
	if now := time.Now(); now.Sub(kp.checked) >= kp.every {
		kp.checked = now
		cs, cerr := statStamp(kp.certFile)
		ks, kerr := statStamp(kp.keyFile)
		if cerr == nil && kerr == nil && (cs != kp.certStamp || ks != kp.keyStamp) {
			// A half-written pair (new certificate, old key) fails to load:
			// keep serving the old one and try again on a later handshake.
			if err := kp.load(); err != nil {
				kp.log.Warn("tls: certificate files changed but do not load; still serving the previous certificate", "err", err)
			}
		}
	}
	return kp.cert, nil
}
