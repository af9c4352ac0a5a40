// Command embedetcd runs an etcd server of the version the client is
// (go.etcd.io/etcd/server/v3/embed, pinned in go.mod) for tests: they
// start it as its own process, so killing it is what a crashed etcd is.
// Alone by default; --name and --initial-cluster make it one member of
// a cluster (started again on its data dir, it rejoins). It prints
// "ready CLIENT_URL" on stdout when it serves (a cluster member: once a
// quorum is up) (--cert, --key and --ca serve clients over mutual TLS)
// and stops on SIGINT or SIGTERM (or when stdin closes, so it never
// outlives the test that started it).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	dir := flag.String("data", "", "data directory (required)")
	client := flag.String("client", "http://127.0.0.1:0", "client URL (port 0 is not allowed by etcd: pass a free port)")
	peer := flag.String("peer", "", "peer URL (a free loopback port)")
	cert := flag.String("cert", "", "server certificate (an https --client URL)")
	key := flag.String("key", "", "server key")
	ca := flag.String("ca", "", "CA that client certificates must chain to (mutual TLS)")
	name := flag.String("name", "test", "member name")
	initial := flag.String("initial-cluster", "", "the cluster's members, NAME=PEER_URL,... (default: this one alone)")
	flag.Parse()
	if *dir == "" || *peer == "" {
		log.Fatal("embedetcd: --data and --peer are required")
	}
	cu, err := url.Parse(*client)
	if err != nil {
		log.Fatalf("embedetcd: --client: %v", err)
	}
	pu, err := url.Parse(*peer)
	if err != nil {
		log.Fatalf("embedetcd: --peer: %v", err)
	}
	cfg := embed.NewConfig()
	cfg.Dir = *dir
	cfg.Name = *name
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	if *initial != "" {
		cfg.InitialCluster = *initial
	}
	cfg.LogLevel = "error"
	if *cert != "" {
		cfg.ClientTLSInfo.CertFile, cfg.ClientTLSInfo.KeyFile = *cert, *key
		cfg.ClientTLSInfo.TrustedCAFile, cfg.ClientTLSInfo.ClientCertAuth = *ca, *ca != ""
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		log.Fatalf("embedetcd: start: %v", err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		log.Fatal("embedetcd: not ready within 30 s")
	}
	fmt.Println("ready", cu.String())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stdinClosed := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stdinClosed) }()
	select {
	case <-ctx.Done():
	case <-stdinClosed:
	case err := <-e.Err():
		log.Printf("embedetcd: %v", err)
	}
}
