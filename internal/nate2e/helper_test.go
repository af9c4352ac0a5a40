package nate2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pion/stun/v4"
)

// The test binary doubles as the small network tools the test runs inside
// its namespaces, so that nothing beyond ip, iptables and ffmpeg is needed.
// helperEnv selects the tool:
//   - "stun": answers STUN binding requests on two UDP ports of stunListen;
//     prints "STUN <addr1> <addr2>" and serves until SIGTERM (at most 2 min);
//   - "probe": from one UDP socket, asks each STUN server in stunServers for
//     its mapped address and prints "MAPPED <addr1> <addr2>"; then reads
//     "PEER <addr>" (or "DONE") from stdin, sends datagrams to that address
//     for punchFor while listening, and prints "RESULT got" or "RESULT none";
//   - "get": prints the body of an HTTP GET of its URL; exit 1 unless 200.
const (
	helperEnv   = "BANYAN_NATE2E_HELPER"
	stunListen  = "BANYAN_NATE2E_STUN_LISTEN"
	stunServers = "BANYAN_NATE2E_STUN_SERVERS"
	getURL      = "BANYAN_NATE2E_URL"
	punchFor    = 2 * time.Second
	punchMsg    = "banyan-punch"
)

func runHelper(mode string) int {
	var err error
	switch mode {
	case "stun":
		err = stunHelper(os.Getenv(stunListen))
	case "probe":
		err = probeHelper(strings.Split(os.Getenv(stunServers), ","))
	case "get":
		err = getHelper(os.Getenv(getURL))
	default:
		err = fmt.Errorf("unknown helper %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nate2e helper:", err)
		return 1
	}
	return 0
}

func stunHelper(host string) error {
	var addrs []string
	for range 2 {
		c, err := net.ListenPacket("udp4", net.JoinHostPort(host, "0"))
		if err != nil {
			return err
		}
		defer c.Close()
		addrs = append(addrs, c.LocalAddr().String())
		go serveSTUN(c)
	}
	fmt.Printf("STUN %s %s\n", addrs[0], addrs[1])
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Minute): // never outlive a stuck test
	}
	return nil
}

// serveSTUN answers binding requests with the source address; anything
// else is ignored.
func serveSTUN(c net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if req.Decode() != nil || req.Type != stun.BindingRequest {
			continue
		}
		ua := from.(*net.UDPAddr)
		resp, err := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
			&stun.XORMappedAddress{IP: ua.IP, Port: ua.Port}, stun.Fingerprint)
		if err == nil {
			_, _ = c.WriteTo(resp.Raw, from)
		}
	}
}

// mapped asks the STUN server at addr which address c's datagrams come from.
func mapped(c *net.UDPConn, addr string) (string, error) {
	srv, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return "", err
	}
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest)
	if err != nil {
		return "", err
	}
	buf := make([]byte, 1500)
	for range 10 { // 10 × 200 ms: UDP may lose the first tries
		if _, err := c.WriteToUDP(req.Raw, srv); err != nil {
			return "", err
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		resp := &stun.Message{Raw: buf[:n]}
		if resp.Decode() != nil || resp.TransactionID != req.TransactionID {
			continue
		}
		var xa stun.XORMappedAddress
		if err := xa.GetFrom(resp); err != nil {
			return "", err
		}
		return net.JoinHostPort(xa.IP.String(), fmt.Sprint(xa.Port)), nil
	}
	return "", fmt.Errorf("no STUN answer from %s", addr)
}

func probeHelper(servers []string) error {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		return err
	}
	defer c.Close()
	var got []string
	for _, s := range servers {
		m, err := mapped(c, s)
		if err != nil {
			return err
		}
		got = append(got, m)
	}
	fmt.Printf("MAPPED %s\n", strings.Join(got, " "))
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() {
		return errors.New("no peer line on stdin")
	}
	peer, ok := strings.CutPrefix(in.Text(), "PEER ")
	if !ok {
		return nil // DONE: mapping probe only
	}
	dst, err := net.ResolveUDPAddr("udp4", peer)
	if err != nil {
		return err
	}
	// Both sides send at once for punchFor, as ICE would: with a NAT that
	// keeps one mapping per socket, each side's first packets open its
	// NAT for the other's.
	result := "none"
	buf := make([]byte, 1500)
	for end := time.Now().Add(punchFor); time.Now().Before(end); {
		if _, err := c.WriteToUDP([]byte(punchMsg), dst); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, _, err := c.ReadFromUDP(buf); err == nil && string(buf[:n]) == punchMsg {
			result = "got"
		}
	}
	fmt.Printf("RESULT %s\n", result)
	return nil
}

func getHelper(url string) error {
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(os.Stdout, io.LimitReader(resp.Body, 8<<20)); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
