package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	DefaultConcurrency = 32
	DefaultDuration    = 5 * time.Second
	DefaultWarmup      = time.Second
)

// Config shapes one measured load.
type Config struct {
	// Concurrency is the number of workers, each with one keep-alive
	// connection and at most one request in flight (0: 32).
	Concurrency int
	// Warmup is the time the load runs before the measured window opens;
	// its requests are not counted (0: 1s, negative: none).
	Warmup time.Duration
	// Duration is the measured window (0: 5s).
	Duration time.Duration
	// Count, when positive, ends the load once this many requests have
	// succeeded (counted from the end of the warm-up) instead of after
	// Duration.
	Count int
	// PIDs are the server processes whose CPU time is read over the
	// measured window; none leaves CPU per request unknown.
	PIDs []int
	// IdleCPU is what PIDs burn with no load, in CPU seconds per second
	// (see IdleCPU): the share of the window's CPU time that is not the
	// requests' doing, for CPUNetus.
	IdleCPU float64
}

func (c Config) withDefaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Duration <= 0 {
		c.Duration = DefaultDuration
	}
	switch {
	case c.Warmup == 0:
		c.Warmup = DefaultWarmup
	case c.Warmup < 0:
		c.Warmup = 0
	}
	return c
}

// Request describes what a worker sends. Body, when not nil, gives the
// body of a worker's seq-th request (from 0), so that requests that
// create something can differ; else Static is sent every time.
type Request struct {
	Method string
	URL    string
	Header http.Header
	Static []byte
	Body   func(worker, seq int) []byte
	// Status is the answer that counts as a success (0: 200).
	Status int
	// urlFor, when set, gives each worker its own URL.
	urlFor func(worker int) string
}

// Stats are the figures of one load over its measured window.
type Stats struct {
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	ReqPerSec   float64 `json:"req_per_sec"`
	// Latencies in microseconds, of successful requests.
	P50us float64 `json:"p50_us"`
	P99us float64 `json:"p99_us"`
	Maxus float64 `json:"max_us"`
	// CPUus is the CPU time (user + system) of the server processes over
	// the window divided by the requests answered in it, in microseconds;
	// 0 when unknown.
	CPUus float64 `json:"cpu_us_per_req,omitempty"`
	// CPUNetus is CPUus less the servers' idle CPU over the window (Raft
	// heartbeats, gossip, tickers), spread over the requests: what the
	// requests themselves cost. 0 when the idle CPU is unknown.
	CPUNetus float64 `json:"cpu_net_us_per_req,omitempty"`
	// FirstError describes one failure, for a reader wondering about
	// Errors (a status and the start of the body, or a transport error).
	FirstError string `json:"first_error,omitempty"`
}

// NewHTTPClient returns the client a load uses: one keep-alive
// connection per worker, never closed between requests.
func NewHTTPClient(concurrency int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        concurrency * 2,
			MaxIdleConnsPerHost: concurrency * 2,
			MaxConnsPerHost:     concurrency * 2,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		},
	}
}

// sample is one answered request.
type sample struct {
	end     time.Time
	latency time.Duration
	ok      bool
}

// Run drives req with cfg's workers and returns the figures of the
// measured window: the requests that completed in it, and the server's
// CPU time between its two ends. Every request is answered in full
// (the body read) before the worker sends its next one, so connections
// stay alive. It fails only when the load can't run at all (ctx done, no
// /proc entry for a PID); failed requests are counted in Errors.
func Run(ctx context.Context, cfg Config, req Request) (Stats, error) {
	w, err := run(ctx, cfg, req)
	if err != nil {
		return Stats{}, err
	}
	return w.stats(), nil
}

// window is what one load measured: its samples, length and server CPU.
type window struct {
	concurrency int
	samples     []sample
	length      time.Duration
	cpu         time.Duration
	idle        time.Duration // idle CPU over the window
	pids        int
	firstErr    string
}

// merge adds the figures of o, measured with the same load, to w.
func (w *window) merge(o window) {
	w.concurrency = o.concurrency
	w.samples = append(w.samples, o.samples...)
	w.length += o.length
	w.cpu += o.cpu
	w.idle += o.idle
	w.pids = o.pids
	if w.firstErr == "" {
		w.firstErr = o.firstErr
	}
}

func (w window) stats() Stats {
	st := summarize(w.samples, w.length)
	st.Concurrency = w.concurrency
	if w.pids > 0 && st.Requests > 0 {
		st.CPUus = float64(w.cpu) / float64(time.Microsecond) / float64(st.Requests)
		if w.idle > 0 {
			st.CPUNetus = max(0, float64(w.cpu-w.idle)/float64(time.Microsecond)/float64(st.Requests))
		}
	}
	st.FirstError = w.firstErr
	return st
}

// RunPaired measures a and b in turns, rounds times each (a, b, a, b,
// ...), each turn a rounds-th of cfg's warm-up and window, so that both
// see the same machine: on a shared machine, whatever else runs slows
// both alike and their ratio holds better than that of two loads
// measured a minute apart. aPIDs and bPIDs are the servers of each,
// aIdle and bIdle their idle CPU (see Config.IdleCPU).
func RunPaired(ctx context.Context, cfg Config, rounds int, a Request, aPIDs []int, aIdle float64, b Request, bPIDs []int, bIdle float64) (Stats, Stats, error) {
	cfg = cfg.withDefaults()
	rounds = max(rounds, 1)
	turn := cfg
	turn.Duration = cfg.Duration / time.Duration(rounds)
	turn.Warmup = max(cfg.Warmup/time.Duration(rounds), 100*time.Millisecond)
	if cfg.Warmup == 0 {
		turn.Warmup = -1
	}
	var wa, wb window
	for range rounds {
		turn.PIDs, turn.IdleCPU = aPIDs, aIdle
		x, err := run(ctx, turn, a)
		if err != nil {
			return Stats{}, Stats{}, err
		}
		wa.merge(x)
		turn.PIDs, turn.IdleCPU = bPIDs, bIdle
		if x, err = run(ctx, turn, b); err != nil {
			return Stats{}, Stats{}, err
		}
		wb.merge(x)
	}
	return wa.stats(), wb.stats(), nil
}

func run(ctx context.Context, cfg Config, req Request) (window, error) {
	cfg = cfg.withDefaults()
	if req.Status == 0 {
		req.Status = http.StatusOK
	}
	hc := NewHTTPClient(cfg.Concurrency)
	defer hc.CloseIdleConnections()

	var (
		measuring atomic.Bool
		done      = make(chan struct{})
		succeeded atomic.Int64
		firstErr  atomic.Pointer[string]
		wg        sync.WaitGroup
	)
	perWorker := make([][]sample, cfg.Concurrency)
	stopOnce := sync.OnceFunc(func() { close(done) })
	for w := range cfg.Concurrency {
		wg.Go(func() {
			samples := make([]sample, 0, 4096)
			for seq := 0; ; seq++ {
				select {
				case <-done:
					perWorker[w] = samples
					return
				case <-ctx.Done():
					perWorker[w] = samples
					return
				default:
				}
				body := req.Static
				if req.Body != nil {
					body = req.Body(w, seq)
				}
				url := req.URL
				if req.urlFor != nil {
					url = req.urlFor(w)
				}
				start := time.Now()
				err := send(ctx, hc, req.Method, url, req.Header, req.Status, body)
				end := time.Now()
				if !measuring.Load() {
					continue
				}
				samples = append(samples, sample{end: end, latency: end.Sub(start), ok: err == nil})
				if err != nil {
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
				} else if cfg.Count > 0 && int(succeeded.Add(1)) >= cfg.Count {
					stopOnce()
				}
			}
		})
	}

	wait := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	fail := func(err error) (window, error) {
		stopOnce()
		wg.Wait()
		return window{}, err
	}
	if err := wait(cfg.Warmup); err != nil {
		return fail(err)
	}
	cpu0, err := cpuTime(cfg.PIDs)
	if err != nil {
		return fail(err)
	}
	start := time.Now()
	measuring.Store(true)
	length := cfg.Duration
	if cfg.Count > 0 {
		length = 24 * time.Hour
	}
	if err := wait(length); err != nil {
		return fail(err)
	}
	end := time.Now()
	cpu1, err := cpuTime(cfg.PIDs)
	if err != nil {
		return fail(err)
	}
	measuring.Store(false)
	stopOnce()
	wg.Wait()

	var all []sample
	for _, s := range perWorker {
		for _, x := range s {
			if !x.end.After(end) { // answered after the window closed: not measured
				all = append(all, x)
			}
		}
	}
	w := window{concurrency: cfg.Concurrency, samples: all, length: end.Sub(start), cpu: cpu1 - cpu0, pids: len(cfg.PIDs)}
	w.idle = time.Duration(cfg.IdleCPU * float64(w.length))
	if p := firstErr.Load(); p != nil {
		w.firstErr = *p
	}
	return w, nil
}

// summarize computes the figures of the samples of a window of length d.
func summarize(all []sample, d time.Duration) Stats {
	var lat []time.Duration
	st := Stats{Seconds: d.Seconds()}
	for _, s := range all {
		if s.ok {
			lat = append(lat, s.latency)
		} else {
			st.Errors++
		}
	}
	st.Requests = len(lat)
	if d > 0 {
		st.ReqPerSec = float64(st.Requests) / d.Seconds()
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
		st.P50us = us(Quantile(lat, 0.50))
		st.P99us = us(Quantile(lat, 0.99))
		st.Maxus = us(lat[len(lat)-1])
	}
	return st
}

// Quantile returns the nearest-rank q-quantile (0 < q <= 1) of sorted d:
// the smallest value that at least q of the values do not exceed. It is
// 0 for no values.
func Quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(d)))) - 1
	return d[max(0, min(i, len(d)-1))]
}

// errStatus is a request answered with another status than expected.
type errStatus struct {
	status int
	body   string
}

func (e *errStatus) Error() string { return fmt.Sprintf("status %d: %s", e.status, e.body) }

func send(ctx context.Context, hc *http.Client, method, url string, header http.Header, status int, body []byte) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	for k, v := range header {
		r.Header[k] = v
	}
	resp, err := hc.Do(r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != status {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		io.Copy(io.Discard, resp.Body)
		return &errStatus{status: resp.StatusCode, body: string(b)}
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	return nil
}

// errNoProc is returned on a system without /proc.
var errNoProc = errors.New("bench: /proc is not available: CPU time can't be measured")
