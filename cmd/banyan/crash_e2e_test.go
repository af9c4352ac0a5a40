package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/e2e"
	"github.com/banyan-live/banyan/store"
)

// keyResult is one `banyan key create` run.
type keyResult struct {
	name, key string
	code      int
	stderr    string
	at        time.Duration // when it finished, from the start of the burst
}

// runKeyCreate runs `banyan key create NAME --json` to completion, without
// the testing.T (it runs on its own goroutine).
func runKeyCreate(data, server, name string) keyResult {
	cmd := exec.Command(banyanBin, "key", "create", name, "--json", "--data", data, "--server", server)
	cmd.Env = cleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	r := keyResult{name: name}
	if err := cmd.Start(); err != nil {
		r.code, r.stderr = -1, err.Error()
		return r
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	r.code, r.stderr = cmd.ProcessState.ExitCode(), errb.String()
	var cs struct{ Name, Key string }
	if r.code == 0 && json.Unmarshal(out.Bytes(), &cs) == nil && cs.Name == name {
		r.key = cs.Key
	}
	return r
}

// checkStore opens a data dir read-only and runs the consistency check
// (bbolt's page check and the store's key-index invariants).
func checkStore(t *testing.T, data string) []store.Stream {
	t.Helper()
	st, err := store.Open(data, store.Options{ReadOnly: true, LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open data dir after the crash: %v", err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		t.Fatalf("data dir inconsistent after the crash: %v", err)
	}
	streams, err := st.Streams()
	if err != nil {
		t.Fatal(err)
	}
	return streams
}

// TestCrashDuringKeyCreation kills `banyan up` with SIGKILL in the middle of
// a burst of concurrent `banyan key create` runs. Runs after the kill find
// no server and create their key offline in the data dir (the lock died
// with the process). Then: the file passes bbolt's check, every key a CLI
// reported works (store.Authorize offline and, after a restart, an RTMP
// publish), the admin token and the demo key survive.
func TestCrashDuringKeyCreation(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	up := startUp(t, data)
	token, err := store.ReadAdminTokenFile(data)
	if err != nil {
		t.Fatal(err)
	}
	const n, parallel, killAfter = 48, 10, 12
	results := make(chan keyResult, n)
	var ok atomic.Int32
	var killed atomic.Bool
	var killAt time.Duration
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	start := time.Now()
	var killMu sync.Mutex
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r := runKeyCreate(data, up.base, fmt.Sprintf("crash%02d", i))
			r.at = time.Since(start)
			results <- r
			if r.key != "" && ok.Add(1) == killAfter {
				// kill -9 while the other five runs are in flight.
				killMu.Lock()
				if killed.CompareAndSwap(false, true) {
					up.cmd.Process.Signal(syscall.SIGKILL)
					killAt = time.Since(start)
				}
				killMu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	close(results)
	select {
	case <-up.done:
	case <-time.After(10 * time.Second):
		t.Fatal("banyan up survived SIGKILL")
	}
	if ws, ok := up.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("banyan up ended with %v, not by SIGKILL", up.cmd.ProcessState)
	}
	var reported, failed []keyResult
	before, after := 0, 0
	for r := range results {
		if r.key == "" {
			failed = append(failed, r)
			continue
		}
		reported = append(reported, r)
		if r.at <= killAt {
			before++
		} else {
			after++
		}
	}
	if before < killAfter {
		t.Fatalf("only %d keys created before the kill", before)
	}

	// The file is consistent and holds every reported stream, active.
	streams := checkStore(t, data)
	byName := map[string]store.Stream{}
	for _, s := range streams {
		byName[s.Name] = s
	}
	unreported := 0
	for _, s := range streams {
		if strings.HasPrefix(s.Name, "crash") {
			found := false
			for _, r := range reported {
				found = found || r.name == s.Name
			}
			if !found {
				unreported++ // committed, but its answer died with the server
			}
		}
	}
	for _, r := range reported {
		if s, ok := byName[r.name]; !ok || s.Revoked {
			t.Errorf("reported key for %s is not in the store (%+v)", r.name, s)
		}
	}
	reasons := map[string]int{}
	for _, r := range failed {
		if strings.Contains(r.stderr, "goroutine ") {
			t.Errorf("%s: CLI crashed: %s", r.name, r.stderr)
		}
		reasons[strings.TrimSpace(r.stderr)]++
	}
	for msg, n := range reasons {
		t.Logf("%d runs failed with: %s", n, msg)
	}

	// Offline: the CLI lists them, and each reported key authorizes.
	out, stderr, code := cli(t, "key", "list", "--json", "--data", data, "--server", "http://127.0.0.1:1")
	if code != 0 {
		t.Fatalf("offline list: %d %s", code, stderr)
	}
	for _, r := range reported {
		if !strings.Contains(out, `"`+r.name+`"`) {
			t.Errorf("offline list lacks %s", r.name)
		}
	}
	st, err := store.Open(data, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reported {
		if s, err := st.Authorize(r.key); err != nil || s.Name != r.name {
			t.Errorf("key of %s: %v (%q)", r.name, err, s.Name)
		}
	}
	if !st.CheckAdminToken(token) {
		t.Error("admin token lost")
	}
	st.Close()
	t.Logf("figures: %d creates, %d parallel; SIGKILL at %v after %d; reported %d (%d before the kill via the server, %d after, offline), %d failed, %d committed without an answer; store check clean",
		n, parallel, killAt.Round(time.Millisecond), killAfter, len(reported), before, after, len(failed), unreported)

	// Restart on the same data dir: no new admin token, the API takes the
	// old one, and a key created before the crash publishes over RTMP.
	up2 := startUp(t, data)
	if strings.Contains(up2.banner, "Admin token (shown once") {
		t.Error("a new admin token was made after the crash")
	}
	req, _ := http.NewRequest("GET", up2.base+"/api/streams", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("admin API after restart: %v %v", err, resp)
	}
	resp.Body.Close()
	ffmpeg := e2e.Require(t, "ffmpeg")
	url, _ := up2.rtmpURL(t)
	var pick keyResult
	for _, r := range reported {
		if r.at <= killAt {
			pick = r
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ff := publish(ctx, ffmpeg, url+"/"+pick.key, 6)
	if err := ff.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { ff.Process.Kill(); ff.Wait() }()
	liveOf(t, up2.base, pick.name, 0) // a key created before the crash publishes
	up2.stop(t, syscall.SIGTERM)
	checkStore(t, data)
}

// freePorts returns n distinct loopback ports free for TCP and UDP now.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var keep []net.Listener
	defer func() {
		for _, l := range keep {
			l.Close()
		}
	}()
	for len(out) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		keep = append(keep, l)
		port := l.Addr().(*net.TCPAddr).Port
		if u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			u.Close()
			out = append(out, port)
		}
	}
	return out
}

// epochFiles returns the recordings of one peer: FILE.mp4, then the
// FILE-<epoch>.mp4 files of later epochs.
func epochFiles(rec string) []string {
	more, _ := filepath.Glob(strings.TrimSuffix(rec, ".mp4") + "-*.mp4")
	if _, err := os.Stat(rec); err != nil {
		return more
	}
	return append([]string{rec}, more...)
}

// TestCrashDuringLiveStream: ffmpeg publishes, three native peers watch
// and record; `banyan up` is killed with SIGKILL. The data dir passes the
// check, `banyan up` restarts on the same dir and ports, ffmpeg (the
// broadcaster reconnecting) publishes again, and the peers, which reconnect
// to the tracker by themselves, continue on the new epoch: each writes
// FILE-<epoch>.mp4 with video, and the signing key is the same.
func TestCrashDuringLiveStream(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the crash-during-live test in -short mode")
	}
	ffmpeg := e2e.Require(t, "ffmpeg")
	ffprobe := e2e.Require(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	data := filepath.Join(t.TempDir(), "data")
	ports := freePorts(t, 3)
	args := []string{"--ice-loopback", "--http", fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"--rtmp", fmt.Sprintf("127.0.0.1:%d", ports[1]), "--turn", fmt.Sprintf("127.0.0.1:%d", ports[2])}
	up := startUp(t, data, args...)
	url, key := up.rtmpURL(t)
	ff := publish(ctx, ffmpeg, url+"/"+key, 120)
	if err := ff.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { ff.Process.Kill(); ff.Wait() }()
	pub1, _ := viewerKeys(t, up.base, "demo")
	live1 := liveOf(t, up.base, "demo", 0)

	dir := t.TempDir()
	var peers []*peerProc
	for i := 0; i < 3; i++ {
		rec := filepath.Join(dir, fmt.Sprintf("p%d.mp4", i))
		p := startPeer(t, up.base, "--record", rec, "--duration", "90s")
		p.record = rec
		peers = append(peers, p)
	}
	// Every peer plays for a while before the crash.
	waitFor(t, 30*time.Second, "peers recording before the crash", func() bool {
		for _, p := range peers {
			if fi, err := os.Stat(p.record); err != nil || fi.Size() < 200<<10 {
				return false
			}
		}
		return true
	})
	time.Sleep(3 * time.Second)

	killAt := time.Now()
	up.cmd.Process.Signal(syscall.SIGKILL)
	<-up.done
	ff.Process.Kill() // its connection died; a broadcaster would reconnect
	ff.Wait()
	checkStore(t, data)

	up2 := startUp(t, data, args...)
	restarted := time.Since(killAt)
	url2, key2 := up2.rtmpURL(t)
	if url2 != url || key2 != key {
		t.Fatalf("RTMP settings changed across the crash: %s %s -> %s %s", url, key, url2, key2)
	}
	ff2 := publish(ctx, ffmpeg, url2+"/"+key2, 120)
	if err := ff2.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { ff2.Process.Kill(); ff2.Wait() }()
	pub2, _ := viewerKeys(t, up2.base, "demo")
	if !bytes.Equal(pub1, pub2) {
		t.Fatal("the stream's signing key changed across the crash")
	}
	live2 := liveOf(t, up2.base, "demo", 0)
	if live2.Epoch <= live1.Epoch {
		t.Fatalf("epoch %d after the restart, was %d", live2.Epoch, live1.Epoch)
	}
	resumed := make([]time.Duration, len(peers))
	waitFor(t, 60*time.Second, "every peer recording the new epoch", func() bool {
		all := true
		for i, p := range peers {
			files := epochFiles(p.record)
			if len(files) >= 2 {
				if fi, err := os.Stat(files[len(files)-1]); err == nil && fi.Size() > 100<<10 {
					if resumed[i] == 0 {
						resumed[i] = time.Since(killAt)
					}
					continue
				}
			}
			all = false
		}
		return all
	})
	time.Sleep(3 * time.Second)
	for _, p := range peers {
		p.cmd.Process.Signal(os.Interrupt)
	}
	for i, p := range peers {
		s := p.summary(t)
		files := epochFiles(p.record)
		first, _ := recording(t, files[0])
		last, seqs := recording(t, files[len(files)-1])
		if first == 0 || last == 0 {
			t.Errorf("peer %d: %d frames before the crash, %d after", i, first, last)
		}
		for j := 1; j < len(seqs); j++ {
			if seqs[j] != seqs[j-1]+1 {
				t.Errorf("peer %d: new-epoch recording has a gap: %v", i, seqs)
				break
			}
		}
		if n := ffprobeFrames(t, ffprobe, files[len(files)-1]); n == 0 {
			t.Errorf("peer %d: ffprobe reads no frame of %s", i, files[len(files)-1])
		}
		if !strings.HasSuffix(files[len(files)-1], fmt.Sprintf("-%d.mp4", live2.Epoch)) {
			t.Errorf("peer %d: last file %s, want epoch %d", i, files[len(files)-1], live2.Epoch)
		}
		t.Logf("peer %d: %d frames in epoch %d, %d frames in %s; played %d chunks, stalls %d; resumed %v after the kill",
			i, first, live1.Epoch, last, filepath.Base(files[len(files)-1]), s.ChunksPlayed, s.Stalls, resumed[i].Round(100*time.Millisecond))
	}
	t.Logf("figures: restart took %v (banner); epoch %d -> %d; peers resumed %v after the kill", restarted.Round(100*time.Millisecond), live1.Epoch, live2.Epoch, resumed)
	up2.stop(t, syscall.SIGTERM)
	checkStore(t, data)
}

// liveOf polls the origin's live document of stream until it shows a
// chunk of an epoch after notBefore.
func liveOf(t *testing.T, base, stream string, notBefore uint32) liveDoc {
	t.Helper()
	var live liveDoc
	waitFor(t, 20*time.Second, "a live chunk of "+stream, func() bool {
		if code, b := httpGet(t, base+"/chunks/"+stream+"/live"); code == 200 {
			json.Unmarshal(b, &live)
		}
		return live.Seq > 0 && live.Epoch > notBefore
	})
	return live
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
