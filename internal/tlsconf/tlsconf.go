// Package tlsconf gives Banyan's listeners (HTTPS, RTMPS, TURNS) their
// server certificate: from a certificate and key file that are reloaded
// when they change on disk (renewed by certbot, cert-manager or a cron
// job, no restart), or from an ACME CA (Let's Encrypt) through
// golang.org/x/crypto/acme/autocert, cached in the data directory.
package tlsconf

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// Config says where certificates come from: files or ACME, not both.
type Config struct {
	// CertFile and KeyFile are a PEM certificate chain and its key. They
	// are read again when either file's size or modification time
	// changes, checked at most every ReloadCheck on a handshake.
	CertFile, KeyFile string
	// ReloadCheck bounds how often the files are stat'ed (default 1s).
	ReloadCheck time.Duration

	// ACME gets certificates for Domains from an ACME CA instead.
	ACME ACME

	Logger *slog.Logger
}

// ACME configures certificates from an ACME CA.
type ACME struct {
	// Domains are the names certificates are obtained for; a handshake
	// for any other name is refused (it would spend the CA's rate limit).
	Domains []string
	// Email is given to the CA for expiry notices (may be empty).
	Email string
	// CA is the directory URL (default: Let's Encrypt production).
	CA string
	// CacheDir keeps the account key and certificates across restarts.
	CacheDir string
	// HTTPClient talks to the CA (default: http.DefaultClient); tests
	// trust their own CA's certificate with it.
	HTTPClient *http.Client
	// RenewBefore renews a certificate this long before it expires
	// (default: autocert's, a third of its lifetime, at most 30 days).
	RenewBefore time.Duration
}

// Enabled reports whether cfg asks for TLS at all.
func (cfg Config) Enabled() bool {
	return cfg.CertFile != "" || cfg.KeyFile != "" || len(cfg.ACME.Domains) > 0
}

// Source hands out the current certificate to every TLS listener.
type Source struct {
	files   *keyPair          // nil with ACME
	acme    *autocert.Manager // nil with files
	log     *slog.Logger
	domain  string   // the first ACME domain: the name in-process clients ask for
	domains []string // every ACME domain, lower case

	mu     sync.Mutex
	served [8][32]byte // hashes of the leaves handed out lately (SelfClientConfig)
	next   int
}

// New checks cfg and, with files, loads them once so that a bad
// certificate fails at start rather than at the first handshake.
func New(cfg Config) (*Source, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	files := cfg.CertFile != "" || cfg.KeyFile != ""
	switch {
	case files && len(cfg.ACME.Domains) > 0:
		return nil, errors.New("tls: certificate files and ACME domains both given: use one")
	case files && (cfg.CertFile == "" || cfg.KeyFile == ""):
		return nil, errors.New("tls: a certificate file needs its key file, and the other way round")
	case files:
		kp, err := newKeyPair(cfg.CertFile, cfg.KeyFile, cfg.ReloadCheck, log)
		if err != nil {
			return nil, err
		}
		return &Source{files: kp, log: log}, nil
	case len(cfg.ACME.Domains) > 0:
		return newACME(cfg.ACME, log)
	}
	return nil, errors.New("tls: no certificate configured")
}

func newACME(a ACME, log *slog.Logger) (*Source, error) {
	if a.CacheDir == "" {
		return nil, errors.New("tls: ACME needs a cache directory")
	}
	domains := make([]string, 0, len(a.Domains))
	for _, d := range a.Domains {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "" {
			continue
		}
		// autocert refuses single-label names and IP addresses at the
		// handshake; say so now, not when the first viewer connects.
		if net.ParseIP(d) != nil || !strings.Contains(strings.Trim(d, "."), ".") {
			return nil, fmt.Errorf("tls: ACME domain %q is not a DNS name with a dot (CAs issue for public names only)", d)
		}
		domains = append(domains, d)
	}
	if len(domains) == 0 {
		return nil, errors.New("tls: no ACME domain")
	}
	m := &autocert.Manager{
		Prompt:      autocert.AcceptTOS,
		Cache:       autocert.DirCache(a.CacheDir),
		HostPolicy:  autocert.HostWhitelist(domains...),
		Email:       a.Email,
		RenewBefore: a.RenewBefore,
		Client:      &acme.Client{DirectoryURL: a.CA, HTTPClient: a.HTTPClient},
	}
	if a.CA == "" {
		m.Client.DirectoryURL = autocert.DefaultACMEDirectory
	}
	return &Source{acme: m, log: log, domain: domains[0], domains: domains}, nil
}

// GetCertificate is the tls.Config hook: the certificate for this handshake.
func (s *Source) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	var c *tls.Certificate
	var err error
	if s.acme != nil {
		if c, err = s.acme.GetCertificate(hello); err != nil {
			// A configured name without a certificate (the CA refused or
			// is unreachable) is the operator's problem: a warning.
			// Other names are scanners handshaking by IP or with made-up
			// names all day: debug, or they would flood the log.
			lvl := slog.LevelDebug
			if slices.Contains(s.domains, strings.ToLower(hello.ServerName)) {
				lvl = slog.LevelWarn
			}
			s.log.Log(context.Background(), lvl, "tls: no certificate for handshake", "server_name", hello.ServerName, "err", err)
			return nil, err
		}
	} else if c, err = s.files.get(); err != nil {
		return nil, err
	}
	if len(c.Certificate) > 0 {
		s.remember(sha256.Sum256(c.Certificate[0]))
	}
	return c, nil
}

func (s *Source) remember(h [32]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.served {
		if x == h {
			return
		}
	}
	s.served[s.next] = h
	s.next = (s.next + 1) % len(s.served)
}

func (s *Source) hasServed(h [32]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.served {
		if x == h {
			return true
		}
	}
	return false
}

// SelfClientConfig is for this process's own clients of its own TLS
// listeners (the in-process seeder's websocket to the tracker). It trusts
// exactly the certificates this Source has handed out, whichever CA signed
// them (a private one, or an ACME CA not in the system roots), and no
// other: dialing loopback, the name in the certificate cannot be checked.
func (s *Source) SelfClientConfig() *tls.Config {
	return &tls.Config{
		ServerName: s.domain,
		// Verified below, against what this process served.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: no server certificate")
			}
			if !s.hasServed(sha256.Sum256(cs.PeerCertificates[0].Raw)) {
				return errors.New("tls: the server's certificate is not one this process serves")
			}
			return nil
		},
	}
}

// ServerConfig is the tls.Config of a listener speaking the given
// application protocols (ALPN), e.g. "h2", "http/1.1". With ACME it also
// answers TLS-ALPN-01 challenges, so the CA can validate on this port.
func (s *Source) ServerConfig(protos ...string) *tls.Config {
	c := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.GetCertificate,
		NextProtos:     append([]string(nil), protos...),
	}
	if s.acme != nil {
		c.NextProtos = append(c.NextProtos, acme.ALPNProto)
	}
	return c
}

// ServerName is the name a client of this process should ask for (the
// first ACME domain; empty with files, which serve one certificate).
func (s *Source) ServerName() string { return s.domain }

// HTTPHandler is what the plain-HTTP port (--http-redirect) serves: ACME
// HTTP-01 challenge answers, and for everything else a redirect to the
// same path on HTTPS at httpsPort ("443" leaves the port out).
func (s *Source) HTTPHandler(httpsPort string) http.Handler {
	h := Redirect(httpsPort)
	if s.acme == nil {
		return h
	}
	acmeH := s.acme.HTTPHandler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// autocert checks the Host header against the domain list as it
		// is, port included: "example.org:80" (sent by some clients, and
		// by a CA validating on a port other than 80) would not match.
		if host, _, err := net.SplitHostPort(r.Host); err == nil {
			r = r.Clone(r.Context())
			r.Host = host
		}
		acmeH.ServeHTTP(w, r)
	})
}

// Redirect sends every request to the same host and path over HTTPS.
func Redirect(httpsPort string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" || strings.ContainsAny(host, "/\\@ ") {
			http.Error(w, "bad Host header", http.StatusBadRequest)
			return
		}
		if httpsPort != "" && httpsPort != "443" {
			host = net.JoinHostPort(strings.Trim(host, "[]"), httpsPort)
		}
		code := http.StatusPermanentRedirect // keeps the method and body
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			code = http.StatusMovedPermanently
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), code)
	})
}
