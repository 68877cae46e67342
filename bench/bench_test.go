package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyzone/keyzone/api/wire"
)

func TestQuantile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		var d []time.Duration
		for _, x := range xs {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		name string
		d    []time.Duration
		q    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"median of odd", ms(1, 2, 3), 0.5, 2 * time.Millisecond},
		{"median of even is the lower", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p99 of 100", hundred, 0.99, 99 * time.Millisecond},
		{"p50 of 100", hundred, 0.50, 50 * time.Millisecond},
		{"max", hundred, 1, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Quantile(tc.d, tc.q); got != tc.want {
				t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
}

func TestParseStatCPU(t *testing.T) {
	// utime 250 and stime 50 ticks: 3 s. The command name holds a space
	// and a parenthesis, as /proc allows.
	stat := "4242 (key zone) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 12 0 100 2000000 3000 18446744073709551615\n"
	got, err := ParseStatCPU([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if got != 3*time.Second {
		t.Errorf("got %v, want 3s", got)
	}
	for _, bad := range []string{"", "4242 keyzone S 1", "1 (a) S 1 2 3", "1 (a) S 1 2 3 4 5 6 7 8 9 10 x 5 0"} {
		if _, err := ParseStatCPU([]byte(bad)); err == nil {
			t.Errorf("ParseStatCPU(%q): no error", bad)
		}
	}
}

func TestCPUTime_Self(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	before, err := cpuTime([]int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the kernel's tick counter moves.
	deadline := time.Now().Add(10 * time.Second)
	x := 0
	for {
		for i := range 1_000_000 {
			x += i
		}
		after, err := cpuTime([]int{os.Getpid()})
		if err != nil {
			t.Fatal(err)
		}
		if after > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time stayed at %v while spinning (%d)", before, x)
		}
	}
	if _, err := cpuTime([]int{1 << 30}); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

func TestParseStatusRSS(t *testing.T) {
	status := "Name:\tkeyzone\nVmPeak:\t  900 kB\nVmRSS:\t   2048 kB\nThreads:\t12\n"
	got, err := ParseStatusRSS([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if got != 2048<<10 {
		t.Errorf("got %d, want %d", got, 2048<<10)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\n", "VmRSS:\tmany kB\n"} {
		if _, err := ParseStatusRSS([]byte(bad)); err == nil {
			t.Errorf("ParseStatusRSS(%q): no error", bad)
		}
	}
	if rss, err := RSS(os.Getpid()); err != nil || rss <= 0 {
		t.Errorf("RSS of this process: %d, %v", rss, err)
	}
}

func TestSummarize(t *testing.T) {
	end := time.Now()
	var s []sample
	for i := 1; i <= 100; i++ {
		s = append(s, sample{end: end, latency: time.Duration(i) * time.Millisecond, ok: true})
	}
	s = append(s, sample{end: end, latency: time.Hour, ok: false}, sample{end: end, latency: time.Hour, ok: false})
	st := summarize(s, 2*time.Second)
	want := Stats{Seconds: 2, Requests: 100, Errors: 2, ReqPerSec: 50, P50us: 50_000, P99us: 99_000, Maxus: 100_000}
	if st != want {
		t.Errorf("got %+v, want %+v", st, want)
	}
}

// TestRun drives a real HTTP server and checks what the load counts:
// every answered request once, failures apart, bodies per worker.
func TestRun(t *testing.T) {
	var served, bad atomic.Int64
	seen := make(chan string, 1<<16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Test") != "yes" {
			bad.Add(1)
		}
		n := served.Add(1)
		select {
		case seen <- string(b):
		default:
		}
		if n%10 == 0 {
			http.Error(w, "every tenth fails", http.StatusTeapot)
			return
		}
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	st, err := Run(context.Background(), Config{Concurrency: 4, Warmup: 50 * time.Millisecond, Duration: 300 * time.Millisecond, PIDs: []int{os.Getpid()}}, Request{
		Method: http.MethodPost, URL: srv.URL, Header: http.Header{"X-Test": {"yes"}},
		Body: func(w, seq int) []byte { return []byte(fmt.Sprintf("%d-%d", w, seq)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if bad.Load() != 0 {
		t.Errorf("%d requests without the header", bad.Load())
	}
	if st.Requests == 0 || st.Errors == 0 {
		t.Fatalf("requests %d, errors %d: want both", st.Requests, st.Errors)
	}
	// The warm-up's requests are served but not counted.
	if total := int64(st.Requests + st.Errors); total >= served.Load() {
		t.Errorf("counted %d of %d served requests: the warm-up is counted", total, served.Load())
	}
	// Every tenth request served fails: the failures counted can't be
	// much more than a tenth of those counted.
	if st.Errors > (st.Requests+st.Errors)/5+1 {
		t.Errorf("%d errors of %d requests, want about a tenth", st.Errors, st.Requests+st.Errors)
	}
	if !strings.Contains(st.FirstError, "418") {
		t.Errorf("first error %q does not name the status", st.FirstError)
	}
	if st.Concurrency != 4 || st.P50us <= 0 || st.P99us < st.P50us || st.Maxus < st.P99us || st.ReqPerSec <= 0 {
		t.Errorf("implausible figures %+v", st)
	}
	close(seen)
	distinct := map[string]bool{}
	for b := range seen {
		distinct[b] = true
	}
	if len(distinct) < 8 {
		t.Errorf("only %d distinct bodies: Body is not called per request", len(distinct))
	}
}

func TestRunPaired(t *testing.T) {
	var turn atomic.Int64 // which server answered last: 1 or 2
	var switches atomic.Int64
	handler := func(id int64) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if turn.Swap(id) != id {
				switches.Add(1)
			}
		}
	}
	a := httptest.NewServer(handler(1))
	defer a.Close()
	b := httptest.NewServer(handler(2))
	defer b.Close()
	sa, sb, err := RunPaired(context.Background(), Config{Concurrency: 2, Warmup: 60 * time.Millisecond, Duration: 300 * time.Millisecond}, 3,
		Request{Method: http.MethodGet, URL: a.URL}, nil, 0, Request{Method: http.MethodGet, URL: b.URL}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Each side's figures cover its three turns.
	if sa.Requests == 0 || sb.Requests == 0 || sa.Seconds <= 0 || sb.Seconds <= 0 {
		t.Errorf("a: %d requests in %.3fs, b: %d in %.3fs", sa.Requests, sa.Seconds, sb.Requests, sb.Seconds)
	}
	if n := switches.Load(); n < 6 {
		t.Errorf("the servers took %d turns, want at least 6 (3 rounds of 2)", n)
	}
}

func TestRun_Count(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	st, err := Run(context.Background(), Config{Concurrency: 3, Warmup: -1, Count: 50}, Request{Method: http.MethodPost, URL: srv.URL, Status: http.StatusCreated})
	if err != nil {
		t.Fatal(err)
	}
	// Workers in flight when the 50th answer arrives may add a few.
	if st.Requests < 50 || st.Requests > 53 || st.Errors != 0 {
		t.Errorf("requests %d, errors %d: want 50 to 53 and 0", st.Requests, st.Errors)
	}
}

func TestRun_CanceledContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Config{Concurrency: 2, Duration: time.Hour}, Request{Method: http.MethodGet, URL: srv.URL}); err == nil {
		t.Fatal("no error with a canceled context")
	}
}

func TestFloorRouter(t *testing.T) {
	const token = "kz_test_floor_token"
	h, err := NewFloorRouter(token, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(path, tok string, body []byte) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	payload := bytes.Repeat([]byte{7}, 4<<10)
	body := encryptBodyOf(payload)

	if st, b := post(FloorNoopPath, token, body); st != http.StatusOK || !json.Valid(b) {
		t.Errorf("noop: %d %s", st, b)
	}
	st, b := post(FloorEchoPath, token, body)
	var echo wire.EncryptResponse
	if st != http.StatusOK || json.Unmarshal(b, &echo) != nil || !bytes.Equal(echo.Ciphertext, payload) {
		t.Errorf("echo: %d, %d bytes back", st, len(echo.Ciphertext))
	}
	if st, _ := post(FloorEchoPath, "wrong-token-of-some-length", body); st != http.StatusUnauthorized {
		t.Errorf("echo with a wrong token: %d, want 401", st)
	}
	st, b = post("/v1/keys/"+NoKMSKeyID+"/encrypt", token, encryptBodyOf(make([]byte, 32)))
	var enc wire.EncryptResponse
	if st != http.StatusOK || json.Unmarshal(b, &enc) != nil || enc.KeyID != NoKMSKeyID || len(enc.Ciphertext) != len(fixedCiphertext) {
		t.Errorf("encrypt without KMS work: %d %s", st, b)
	}
	if st, _ := post("/v1/keys/"+NoKMSKeyID+"/encrypt", "wrong-token-of-some-length", body); st != http.StatusUnauthorized {
		t.Errorf("encrypt with a wrong token: %d, want 401", st)
	}
	if st, _ := post(FloorEchoPath, token, []byte(`{"plaintext":"not base64!"}`)); st != http.StatusBadRequest {
		t.Errorf("echo of bad base64: %d, want 400", st)
	}
}

func encryptBodyOf(p []byte) []byte {
	return []byte(`{"plaintext":"` + base64.StdEncoding.EncodeToString(p) + `"}`)
}

func TestReport(t *testing.T) {
	r := NewReport("test")
	floor := Stats{ReqPerSec: 1000, CPUus: 40, P50us: 100, P99us: 300}
	r.Add(Row{Name: FloorNoop, Node: "floor", Stats: floor}, "", Stats{})
	r.Add(Row{Name: Encrypt32, Node: "follower", Stats: Stats{ReqPerSec: 900, CPUus: 46, P50us: 110, P99us: 500}}, FloorNoop, floor)
	r.Add(Row{Name: CreateKey, Node: "leader", Stats: Stats{Concurrency: 64, ReqPerSec: 4100}}, "", Stats{})
	r.Lag = []Lag{{Rotations: 100, Zones: "replica zones", P50ms: 40, P99ms: 260, Maxms: 300}}
	row := r.Row(Encrypt32, "follower")
	if row.ReqRatio != 0.9 || row.CPURatio != 1.15 || row.Floor != FloorNoop {
		t.Errorf("ratios %v %v of %q, want 0.9 1.15 of the no-op floor", row.ReqRatio, row.CPURatio, row.Floor)
	}
	r.Checks = Checks(r)
	met := map[string]bool{}
	for _, c := range r.Checks {
		met[c.Target] = c.Met
	}
	for target, want := range map[string]bool{
		"encrypt 32 B on a follower: >= 0.85x the floor's req/s":          true,
		"encrypt 32 B on a follower: CPU per request <= 1.2x the floor's": true,
		"encrypt 32 B on a follower: p99 <= 4x p50":                       false,
		"key creation >= 4,000/s (3 nodes, 64 clients, fsync on)":         true,
		"rotation in force in every replica zone: p99 < 250 ms":           false,
	} {
		if got, ok := met[target]; !ok || got != want {
			t.Errorf("check %q: met %v (present %v), want %v", target, got, ok, want)
		}
	}

	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"encrypt 32 B", "0.90", "1.15", "MISSED", "260.0ms"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	path := filepath.Join(t.TempDir(), "out", "bench.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Rows) != 3 || back.Rows[1].ReqRatio != 0.9 || back.Lag[0].P99ms != 260 || len(back.Checks) != len(r.Checks) {
		t.Errorf("JSON round trip lost figures: %s", b)
	}
}

func TestParseEnv(t *testing.T) {
	env, err := parseEnv(strings.NewReader("KEYZONE_ADDR=http://a\nexport KEYZONE_TOKEN=t=1\n\nnoise\n"))
	if err != nil {
		t.Fatal(err)
	}
	if env["KEYZONE_ADDR"] != "http://a" || env["KEYZONE_TOKEN"] != "t=1" || len(env) != 2 {
		t.Errorf("got %v", env)
	}
}

// TestFreePorts: the ports of a zone are distinct and free for TCP and UDP.
func TestFreePorts(t *testing.T) {
	ports, err := freePorts(30)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: %d repeated or invalid", ports, p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d not free once returned: %v", p, err)
		}
		l.Close()
	}
}
