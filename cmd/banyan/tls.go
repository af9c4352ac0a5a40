package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/banyan-live/banyan/internal/realip"
	"github.com/banyan-live/banyan/internal/tlsconf"
	"github.com/banyan-live/banyan/seeder/rtmpingest"
)

// tlsOptions are the flags of `banyan up` about its front door: TLS
// certificates, the plain-HTTP redirect port, HSTS and trusted proxies.
type tlsOptions struct {
	CertFile, KeyFile                 string
	ACMEDomains, ACMEEmail, ACMECA    string
	HTTPRedirect, CAFile, TrustedProx string
	RTMPS, TURNS                      string
	HSTS                              bool
}

func (o *tlsOptions) register(c *command) {
	c.String(&o.CertFile, "tls-cert", "", "serve HTTPS/WSS with this PEM certificate chain (reloaded when the file changes)")
	c.String(&o.KeyFile, "tls-key", "", "the private key of --tls-cert (PEM)")
	c.String(&o.ACMEDomains, "acme-domain", "", "get certificates for NAME[,NAME] from an ACME CA (Let's Encrypt): TLS-ALPN-01 on --http, HTTP-01 on --http-redirect; cached in the data dir")
	c.String(&o.ACMEEmail, "acme-email", "", "contact address given to the ACME CA (expiry notices)")
	c.String(&o.ACMECA, "acme-ca", "", "ACME directory URL (default: Let's Encrypt production)")
	c.String(&o.HTTPRedirect, "http-redirect", "", "with TLS, plain-HTTP listen address that answers ACME HTTP-01 challenges and redirects everything else to HTTPS (default :80 with --acme-domain, none with --tls-cert; \"off\": none)")
	c.String(&o.CAFile, "ca", "", "PEM file of extra CA certificates trusted for outgoing TLS (a private ACME CA); SSL_CERT_FILE also works")
	c.String(&o.TrustedProx, "trusted-proxy", "", "CIDR[,CIDR] of reverse proxies whose Forwarded / X-Forwarded-For / X-Forwarded-Proto headers give the client's address and scheme")
	c.String(&o.RTMPS, "rtmps", "", "with TLS, RTMPS ingest listen address, the same keys and limits as RTMP (default :1936 when a certificate is configured; \"off\": none)")
	c.String(&o.TURNS, "turns", "", "with TLS, TURN-over-TLS listen address offered to viewers as turns: (default :5349 when a certificate is configured; \"off\": none)")
	c.Bool(&o.HSTS, "hsts", false, "send Strict-Transport-Security (one year) on HTTPS responses; browsers then refuse plain HTTP for the host")
}

// frontDoor is how clients reach `banyan up`'s HTTP port: TLS or not,
// through which proxies, and the plain-HTTP redirect listener.
type frontDoor struct {
	opt     tlsOptions
	log     *slog.Logger    // component=tls
	base    *slog.Logger    // the process's, for other components
	src     *tlsconf.Source // nil: plain HTTP
	trusted realip.Trusted

	redirect    *http.Server // --http-redirect, nil without
	redirectLn  net.Listener
	redirectErr chan error

	rtmps    *rtmpingest.Server // --rtmps, nil without
	rtmpsErr chan error
}

// newFrontDoor checks the flags and loads the certificate (files) or
// prepares ACME; nothing listens yet.
func newFrontDoor(o tlsOptions, dataDir string, log *slog.Logger) (*frontDoor, error) {
	f := &frontDoor{opt: o, log: log.With("component", "tls"), base: log}
	var err error
	if f.trusted, err = realip.ParseTrusted(o.TrustedProx); err != nil {
		return nil, usageError{"banyan up: --trusted-proxy: " + err.Error()}
	}
	cfg := tlsconf.Config{CertFile: o.CertFile, KeyFile: o.KeyFile, Logger: f.log}
	if o.ACMEDomains != "" {
		client, err := outboundClient(o.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.ACME = tlsconf.ACME{
			Domains: strings.Split(o.ACMEDomains, ","), Email: o.ACMEEmail, CA: o.ACMECA,
			CacheDir: filepath.Join(dataDir, "acme"), HTTPClient: client,
		}
	}
	if !cfg.Enabled() {
		if o.HSTS && f.trusted.Empty() {
			return nil, usageError{"banyan up: --hsts needs HTTPS: give --tls-cert/--tls-key or --acme-domain, or --trusted-proxy for a TLS proxy in front"}
		}
		for _, fl := range []struct{ name, val string }{{"rtmps", o.RTMPS}, {"turns", o.TURNS}, {"http-redirect", o.HTTPRedirect}} {
			if fl.val != "" && fl.val != "off" {
				return nil, usageError{"banyan up: --" + fl.name + " needs a certificate: --tls-cert/--tls-key or --acme-domain"}
			}
		}
		return f, nil
	}
	if f.src, err = tlsconf.New(cfg); err != nil {
		return nil, fmt.Errorf("%w (--tls-cert, --tls-key, --acme-domain)", err)
	}
	return f, nil
}

// outboundClient trusts the system roots plus caFile.
func outboundClient(caFile string) (*http.Client, error) {
	tr, err := caTransport(caFile)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: time.Minute, Transport: tr}, nil
}

// caTransport is an HTTP transport trusting the system roots (and
// SSL_CERT_FILE) plus the certificates in caFile; nil for no caFile (the
// default transport).
func caTransport(caFile string) (http.RoundTripper, error) {
	if caFile == "" {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("--ca: %s holds no PEM certificate", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	return tr, nil
}

// host is the name in the ACME certificate ("" without ACME).
func (f *frontDoor) host() string {
	if f == nil || f.src == nil {
		return ""
	}
	return f.src.ServerName()
}

// TLS reports whether the HTTP port speaks HTTPS.
func (f *frontDoor) TLS() bool { return f.src != nil }

// scheme is "http" or "https" (ws: "ws" or "wss") for printed URLs.
func (f *frontDoor) scheme(plain string) string {
	if f.src != nil {
		return plain + "s"
	}
	return plain
}

// wrap puts the front-door handlers before mux: the real client address
// and scheme from trusted proxies, then HSTS.
func (f *frontDoor) wrap(mux http.Handler) http.Handler {
	h := mux
	if f.opt.HSTS {
		next := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if realip.HTTPS(r) {
				w.Header().Set("Strict-Transport-Security", "max-age=31536000")
			}
			next.ServeHTTP(w, r)
		})
	}
	return f.trusted.Handler(h)
}

// exemptProxy leaves trusted proxies out of the per-address connection
// limit: each carries many clients, limited on their own addresses.
func (f *frontDoor) exemptProxy() func(netip.Addr) bool {
	if f.trusted.Empty() {
		return nil
	}
	return f.trusted.Contains
}

// serve runs srv on ln, over TLS (HTTP/2 and HTTP/1.1) when configured.
func (f *frontDoor) serve(srv *http.Server, ln net.Listener) error {
	if f.src == nil {
		return srv.Serve(ln)
	}
	srv.TLSConfig = f.src.ServerConfig("h2", "http/1.1")
	return srv.ServeTLS(ln, "", "")
}

// selfClient is the HTTP client the in-process seeder dials its own
// tracker with (nil: the default client, for plain HTTP).
func (f *frontDoor) selfClient() *http.Client {
	if f.src == nil {
		return nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = f.src.SelfClientConfig()
	return &http.Client{Transport: tr}
}

// startRedirect opens --http-redirect: ACME HTTP-01 answers and redirects
// to the HTTPS port.
func (f *frontDoor) startRedirect(ctx context.Context, httpsAddr net.Addr, lim upLimits) error {
	addr := f.opt.HTTPRedirect
	if addr == "" && f.opt.ACMEDomains != "" {
		addr = ":80"
	}
	if f.src == nil || addr == "" || addr == "off" {
		return nil // without a certificate newFrontDoor refused the flag
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (--http-redirect): %w", addr, unwrapOpError(err))
	}
	f.redirectLn = ln
	f.redirect = &http.Server{
		Handler:           f.src.HTTPHandler(portOf(httpsAddr)),
		ReadHeaderTimeout: lim.HTTPHeaderTimeout, ReadTimeout: lim.HTTPReadTimeout,
		WriteTimeout: lim.HTTPWriteTimeout, IdleTimeout: lim.HTTPIdle, MaxHeaderBytes: lim.HTTPMaxHeader,
		ErrorLog:    slog.NewLogLogger(f.log.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	f.redirectErr = make(chan error, 1)
	go func() { f.redirectErr <- f.redirect.Serve(ln) }()
	f.log.Info("http redirect listening", "addr", ln.Addr().String())
	return nil
}

// turnsAddr is the TURN-over-TLS listen address ("" for none).
func (f *frontDoor) turnsAddr() string {
	switch {
	case f.src == nil || f.opt.TURNS == "off":
		return ""
	case f.opt.TURNS == "":
		return ":5349"
	}
	return f.opt.TURNS
}

// getCertificate is the certificate hook of the other TLS listeners
// (TURNS); nil without TLS.
func (f *frontDoor) getCertificate() func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if f.turnsAddr() == "" {
		return nil
	}
	return f.src.GetCertificate
}

// startRTMPS opens --rtmps with the RTMP ingest's configuration.
func (f *frontDoor) startRTMPS(ctx context.Context, config func(addr string) rtmpingest.Config) error {
	addr := f.opt.RTMPS
	if f.src == nil || addr == "off" {
		return nil
	}
	if addr == "" {
		addr = ":1936"
	}
	cfg := config(addr)
	cfg.TLS = f.src.ServerConfig()
	cfg.Logger = f.base.With("component", "rtmps")
	srv, err := rtmpingest.New(cfg)
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return fmt.Errorf("cannot listen on %s (--rtmps): %w", addr, unwrapOpError(err))
	}
	f.rtmps, f.rtmpsErr = srv, make(chan error, 1)
	go func() { f.rtmpsErr <- srv.Serve(ctx) }()
	return nil
}

// rtmpURL is the Server field for OBS: RTMPS when it is on.
func (f *frontDoor) rtmpURL(host string, plain net.Addr) string {
	if f.rtmps != nil {
		return "rtmps://" + hostPort(host, f.rtmps.Addr().String()) + "/live"
	}
	return "rtmp://" + hostPort(host, plain.String()) + "/live"
}

// Close stops the redirect and RTMPS listeners.
func (f *frontDoor) Close() error {
	if f == nil {
		return nil
	}
	var errs []error
	if f.redirect != nil {
		f.redirect.Close()
		if err := <-f.redirectErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("http redirect serve: %w", err))
		}
	}
	if f.rtmps != nil {
		f.rtmps.Close()
		if err := <-f.rtmpsErr; err != nil {
			errs = append(errs, fmt.Errorf("rtmps serve: %w", err))
		}
	}
	return errors.Join(errs...)
}

// printPlainRTMP names the plain RTMP port too when RTMPS is the one
// shown (older encoders without RTMPS).
func (f *frontDoor) printPlainRTMP(w io.Writer, host string, plain net.Addr) {
	if f.rtmps != nil {
		fmt.Fprintf(w, "    (plain RTMP, unencrypted: rtmp://%s/live)\n", hostPort(host, plain.String()))
	}
}
