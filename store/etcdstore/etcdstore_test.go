package etcdstore

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/etcdtest"
	"github.com/banyan-live/banyan/store"
	"github.com/banyan-live/banyan/store/storetest"
)

// TestBackendEtcd runs the shared backend cases (package storetest, the
// same the bbolt store passes) on the embedded etcd server of the
// client's version and on Debian's etcd-server, each its own process.
// Each case gets its own prefix, so one server serves them all.
func TestBackendEtcd(t *testing.T) {
	for _, kind := range []etcdtest.Kind{etcdtest.Embedded, etcdtest.Debian} {
		t.Run(string(kind), func(t *testing.T) {
			srv := etcdtest.Start(t, kind)
			var n atomic.Int64
			storetest.Run(t, func(t *testing.T) (store.Backend, func() store.Backend) {
				cfg := Config{Endpoints: []string{srv.Endpoint}, Prefix: fmt.Sprintf("/t%d/", n.Add(1))}
				open := func() store.Backend {
					s, err := Open(cfg)
					if err != nil {
						t.Fatal(err)
					}
					return s
				}
				return open(), open
			})
		})
	}
}

// TestOpenUnreachable: no etcd at the address is a clear error, soon.
func TestOpenUnreachable(t *testing.T) {
	_, err := Open(Config{Endpoints: []string{fmt.Sprintf("http://127.0.0.1:%d", etcdtest.FreePort(t))}, Timeout: 500 * time.Millisecond})
	if err == nil {
		t.Fatal("opened an etcd that is not there")
	}
}

// TestOpenTLS: an etcd that serves clients over mutual TLS is reached
// with the CA and a client certificate, and refuses a client without
// either.
func TestOpenTLS(t *testing.T) {
	f := etcdtest.WriteTLS(t)
	srv := etcdtest.StartTLS(t, f)
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"CA and client certificate", Config{CAFile: f.CA, CertFile: f.ClientCert, KeyFile: f.ClientKey}, true},
		{"no client certificate", Config{CAFile: f.CA}, false},
		{"unknown CA", Config{CertFile: f.ClientCert, KeyFile: f.ClientKey}, false},
	} {
		tc.cfg.Endpoints, tc.cfg.Timeout, tc.cfg.Prefix = []string{srv.Endpoint}, 2*time.Second, "/tls/"
		s, err := Open(tc.cfg)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
		if err == nil {
			if _, _, err := s.CreateStream("x" + fmt.Sprint(len(tc.name))); err != nil {
				t.Errorf("%s: create over TLS: %v", tc.name, err)
			}
			s.Close()
		}
	}
}
