package bench

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
)

// Suite is the whole `keyzone bench` run.
type Suite struct {
	// Binary is the keyzone executable the servers are started from.
	Binary string
	// Dir holds the children's data and logs.
	Dir string
	// Addr and Token, when Addr is set, name a running deployment to
	// measure instead of starting a zone; PID, when set, is its node's
	// process (for CPU time).
	Addr, Token string
	PID         int
	// Load shapes the crypto loads (concurrency, warm-up, window).
	Load Config
	// Rounds is how many turns a load and its floor take (see RunPaired;
	// 0: 3).
	Rounds int
	// WriteConcurrency is the number of clients creating and rotating keys.
	WriteConcurrency int
	// Rotations, when positive, measures the rotation lag with Lag over
	// this many rotations.
	Rotations int
	// Lag measures rotations in a multi-zone deployment described by the
	// env file `keyzone dev --env-file` wrote.
	Lag func(ctx context.Context, envFile string, rotations int) ([]Lag, error)
	// Progress receives one line per step.
	Progress io.Writer
	// Only, when not empty, names the parts to run (PartCrypto,
	// PartWrites, PartLag); the others are skipped.
	Only []string
}

// The parts of a run, for Suite.Only.
const (
	PartCrypto = "crypto" // the floors and the crypto loads
	PartWrites = "writes" // key creation and rotation
	PartLag    = "lag"    // the rotation lag between zones
)

// Parts lists the names Suite.Only accepts.
var Parts = []string{PartCrypto, PartWrites, PartLag}

func (s *Suite) runs(part string) bool { return len(s.Only) == 0 || slices.Contains(s.Only, part) }

// Names of the rows.
const (
	FloorNoop   = "no-op JSON"
	floorEcho   = "echo JSON %s"
	Encrypt32   = "encrypt 32 B"
	Decrypt32   = "decrypt 32 B"
	DataKey     = "generate-data-key"
	ReEncrypt32 = "re-encrypt 32 B"
	NoKMS32     = "encrypt 32 B, API without KMS work"
	CreateKey   = "create key"
	RotateKey   = "rotate key"
)

// FloorEcho is the name of the echo floor of n bytes.
func FloorEcho(n int) string { return fmt.Sprintf(floorEcho, sizeName(n)) }

// EncryptN is the name of the encrypt row of n bytes.
func EncryptN(n int) string { return "encrypt " + sizeName(n) }

func sizeName(n int) string {
	if n >= 1<<10 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func (s *Suite) progress(format string, args ...any) {
	if s.Progress != nil {
		fmt.Fprintf(s.Progress, format+"\n", args...)
	}
}

// Run measures everything and returns the report. Children are stopped
// before it returns.
func (s *Suite) Run(ctx context.Context) (*Report, error) {
	token := s.Token
	var (
		zone     *Zone
		leader   *Proc
		follower *Proc
		err      error
	)
	if s.Addr == "" {
		if token, err = NewToken(); err != nil {
			return nil, err
		}
		s.progress("starting a zone of 3 `keyzone server` processes (fsync on)")
		zone, err = StartZone(ZoneOptions{Binary: s.Binary, Dir: s.Dir, Token: token})
		if err != nil {
			return nil, err
		}
		defer zone.Stop()
		if leader, err = zone.WaitReady(ctx, 90*time.Second); err != nil {
			return nil, err
		}
		if token, err = zone.Organization(ctx, leader.URL); err != nil {
			return nil, err
		}
		for _, p := range zone.Nodes {
			if p != leader {
				follower = p
				break
			}
		}
	}
	s.progress("starting the floor server")
	floor, err := StartFloor(ctx, s.Binary, s.Dir, token)
	if err != nil {
		return nil, err
	}
	defer floor.Stop()

	target := "a zone of 3 keyzone server processes on loopback (fsync on), the load generator in this process"
	if s.Addr != "" {
		target = s.Addr
	}
	rep := NewReport(target)
	// What each server burns with no load, before any: a zone's nodes
	// heartbeat and gossip at all times.
	idle := map[int]float64{}
	rep.IdleCPU = map[string]float64{}
	idleOf := func(role string, pids ...int) error {
		if len(pids) == 0 {
			return nil
		}
		x, err := IdleCPU(ctx, pids, 3*time.Second)
		if err != nil {
			return err
		}
		idle[pids[0]] = x
		rep.IdleCPU[role] = x * 1000
		return nil
	}
	s.progress("measuring idle CPU")
	if err := idleOf("floor", floor.PID()); err != nil {
		return nil, err
	}
	if zone != nil {
		if err := idleOf("leader", leader.PID()); err != nil {
			return nil, err
		}
		if err := idleOf("follower", follower.PID()); err != nil {
			return nil, err
		}
	} else if s.PID > 0 {
		if err := idleOf("given", s.PID); err != nil {
			return nil, err
		}
	}
	floors := map[string]Request{}
	rounds := s.Rounds
	if rounds <= 0 {
		rounds = 3
	}
	measure := func(name, node, floorName string, cfg Config, req Request) error {
		s.progress("  %s (%s)", name, node)
		if floorName == "" {
			st, err := Run(ctx, cfg, req)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if node == "floor" {
				floors[name] = req
			}
			rep.Add(Row{Name: name, Node: node, Stats: st}, "", Stats{})
			return nil
		}
		var nodeIdle float64
		if len(cfg.PIDs) == 1 {
			nodeIdle = idle[cfg.PIDs[0]]
		}
		fst, st, err := RunPaired(ctx, cfg, rounds, floors[floorName], []int{floor.PID()}, idle[floor.PID()], req, cfg.PIDs, nodeIdle)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		rep.Add(Row{Name: name, Node: node, Stats: st}, floorName, fst)
		return nil
	}
	auth := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
	cfgFor := func(pids ...int) Config {
		c := s.Load
		c.PIDs = pids
		return c
	}

	cryptoLoads := func() error {
		// The floors.
		enc32 := encryptBody(32)
		sizes := []int{4 << 10, 64 << 10}
		floorCfg := cfgFor(floor.PID())
		floorCfg.IdleCPU = idle[floor.PID()]
		if err := measure(FloorNoop, "floor", "", floorCfg, Request{Method: http.MethodPost, URL: floor.URL + FloorNoopPath, Header: auth, Static: enc32}); err != nil {
			return err
		}
		for _, n := range sizes {
			if err := measure(FloorEcho(n), "floor", "", floorCfg, Request{Method: http.MethodPost, URL: floor.URL + FloorEchoPath, Header: auth, Static: encryptBody(n)}); err != nil {
				return err
			}
		}
		if err := measure(NoKMS32, "floor", FloorNoop, floorCfg, Request{Method: http.MethodPost, URL: floor.URL + "/v1/keys/" + NoKMSKeyID + "/encrypt", Header: auth, Static: enc32}); err != nil {
			return err
		}

		// Crypto on a follower and on the leader.
		type node struct {
			name string
			url  string
			pids []int
		}
		var nodes []node
		if s.Addr != "" {
			var pids []int
			if s.PID > 0 {
				pids = []int{s.PID}
			}
			nodes = []node{{"given", strings.TrimRight(s.Addr, "/"), pids}}
		} else {
			nodes = []node{{"follower", follower.URL, []int{follower.PID()}}, {"leader", leader.URL, []int{leader.PID()}}}
		}
		c, err := client.New(nodes[0].url, token)
		if err != nil {
			return err
		}
		key, err := c.CreateKey(ctx, wire.CreateKeyRequest{Name: fmt.Sprintf("bench-%d", time.Now().UnixNano()), Description: "created by keyzone bench"})
		if err != nil {
			return fmt.Errorf("create the key to measure with: %w", err)
		}
		ct, err := c.Encrypt(ctx, key.ID, wire.EncryptRequest{Plaintext: randomBytes(32)})
		if err != nil {
			return fmt.Errorf("encrypt with the new key: %w", err)
		}
		keyURL := "/v1/keys/" + key.ID
		for i, n := range nodes {
			cfg := cfgFor(n.pids...)
			if len(n.pids) == 1 {
				cfg.IdleCPU = idle[n.pids[0]]
			}
			post := func(path string, body []byte) Request {
				return Request{Method: http.MethodPost, URL: n.url + path, Header: auth, Static: body}
			}
			for _, l := range []struct {
				name, floor string
				req         Request
			}{
				{Encrypt32, FloorNoop, post(keyURL+"/encrypt", enc32)},
				{Decrypt32, FloorNoop, post("/v1/decrypt", mustJSON(wire.DecryptRequest{Ciphertext: ct.Ciphertext}))},
				{DataKey, FloorNoop, post(keyURL+"/generate-data-key", mustJSON(wire.GenerateDataKeyRequest{KeySize: 256}))},
				{ReEncrypt32, FloorNoop, post("/v1/re-encrypt", mustJSON(wire.ReEncryptRequest{Ciphertext: ct.Ciphertext}))},
			} {
				if err := measure(l.name, n.name, l.floor, cfg, l.req); err != nil {
					return err
				}
			}
			if i > 0 {
				continue // the large payloads only on the follower: the path is the same
			}
			for _, size := range sizes {
				if err := measure(EncryptN(size), n.name, FloorEcho(size), cfg, post(keyURL+"/encrypt", encryptBody(size))); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if s.runs(PartCrypto) {
		if err := cryptoLoads(); err != nil {
			return nil, err
		}
	}

	// Raft writes, sent to the leader; the CPU is that of every node.
	if zone != nil && s.runs(PartWrites) {
		// The zone's idle CPU: the leader's and, for each follower, the
		// one follower's measured.
		zoneIdle := (rep.IdleCPU["leader"] + float64(len(zone.Nodes)-1)*rep.IdleCPU["follower"]) / 1000
		if err := s.writes(ctx, rep, zone, leader, auth, zoneIdle); err != nil {
			return nil, err
		}
	}

	if s.Rotations > 0 && s.Lag != nil && s.runs(PartLag) {
		if zone != nil {
			zone.Stop() // its CPU would only disturb the lag
		}
		floor.Stop()
		s.progress("starting `keyzone dev --zones 3` for the rotation lag (%d rotations)", s.Rotations)
		dev, env, err := StartDev(ctx, s.Binary, s.Dir, 3)
		if err != nil {
			return nil, err
		}
		lag, err := s.Lag(ctx, env, s.Rotations)
		dev.Stop()
		if err != nil {
			return nil, fmt.Errorf("rotation lag: %w", err)
		}
		rep.Lag = lag
	}
	rep.Checks = Checks(rep)
	return rep, nil
}

// writes measures key creation and rotation with WriteConcurrency clients.
func (s *Suite) writes(ctx context.Context, rep *Report, zone *Zone, leader *Proc, auth http.Header, zoneIdle float64) error {
	conc := s.WriteConcurrency
	if conc <= 0 {
		conc = 64
	}
	cfg := s.Load
	cfg.Concurrency = conc
	cfg.PIDs, cfg.IdleCPU = zone.PIDs(), zoneIdle
	run := time.Now().UnixNano()
	create := Request{
		Method: http.MethodPost, URL: leader.URL + "/v1/keys", Header: auth, Status: http.StatusCreated,
		Body: func(w, seq int) []byte {
			return []byte(`{"name":"bench-` + strconv.FormatInt(run, 36) + "-" + strconv.Itoa(w) + "-" + strconv.Itoa(seq) + `"}`)
		},
	}
	s.progress("  %s (leader, %d clients)", CreateKey, conc)
	st, err := Run(ctx, cfg, create)
	if err != nil {
		return err
	}
	rep.Add(Row{Name: CreateKey, Node: "leader", Stats: st}, "", Stats{})

	// One key per client, so rotations never conflict with each other.
	c, err := client.New(leader.URL, strings.TrimPrefix(auth.Get("Authorization"), "Bearer "))
	if err != nil {
		return err
	}
	ids := make([]string, conc)
	for i := range ids {
		k, err := c.CreateKey(ctx, wire.CreateKeyRequest{Name: fmt.Sprintf("bench-%d-rotate-%d", run, i)})
		if err != nil {
			return fmt.Errorf("create the keys to rotate: %w", err)
		}
		ids[i] = k.ID
	}
	rotate := Request{
		Method: http.MethodPost, Header: auth,
		Body: func(int, int) []byte { return nil },
	}
	s.progress("  %s (leader, %d clients)", RotateKey, conc)
	st, err = runPerWorkerURL(ctx, cfg, rotate, func(w int) string { return leader.URL + "/v1/keys/" + ids[w] + "/rotate" })
	if err != nil {
		return err
	}
	rep.Add(Row{Name: RotateKey, Node: "leader", Stats: st}, "", Stats{})
	return nil
}

// runPerWorkerURL is Run with a URL per worker.
func runPerWorkerURL(ctx context.Context, cfg Config, req Request, url func(w int) string) (Stats, error) {
	req.urlFor = url
	return Run(ctx, cfg, req)
}

// Checks compares a report with the targets.
func Checks(r *Report) []Check {
	var out []Check
	for _, name := range []string{Encrypt32, Decrypt32, DataKey} {
		row := r.Row(name, "follower")
		if row == nil {
			continue
		}
		out = append(out,
			Check{name + " on a follower: >= 0.85x the floor's req/s", fmt.Sprintf("%.2fx (%.0f req/s)", row.ReqRatio, row.ReqPerSec), row.ReqRatio >= 0.85},
			Check{name + " on a follower: CPU per request <= 1.2x the floor's", fmt.Sprintf("%.2fx (%.0fµs; net of idle CPU %.2fx, %.0fµs)", row.CPURatio, row.CPUus, row.CPUNetRatio, row.CPUNetus), row.CPURatio > 0 && row.CPURatio <= 1.2})
	}
	for _, n := range []int{4 << 10, 64 << 10} {
		if row := r.Row(EncryptN(n), "follower"); row != nil {
			out = append(out, Check{EncryptN(n) + ": >= 0.70x the echo floor's req/s", fmt.Sprintf("%.2fx (%.0f req/s)", row.ReqRatio, row.ReqPerSec), row.ReqRatio >= 0.70})
		}
	}
	if row := r.Row(Encrypt32, "follower"); row != nil && row.P50us > 0 {
		got := fmt.Sprintf("%.1fx (p50 %s, p99 %s)", row.P99us/row.P50us, fmtUS(row.P50us), fmtUS(row.P99us))
		if row.FloorP50us > 0 {
			got += fmt.Sprintf("; its floor: %.1fx", row.FloorP99us/row.FloorP50us)
		}
		out = append(out, Check{Encrypt32 + " on a follower: p99 <= 4x p50", got, row.P99us <= 4*row.P50us})
	}
	if row := r.Row(CreateKey, "leader"); row != nil {
		out = append(out, Check{fmt.Sprintf("key creation >= 4,000/s (3 nodes, %d clients, fsync on)", row.Concurrency), fmt.Sprintf("%.0f/s", row.ReqPerSec), row.ReqPerSec >= 4000})
	}
	for _, l := range r.Lag {
		if l.Zones == "replica zones" {
			out = append(out, Check{"rotation in force in every replica zone: p99 < 250 ms", fmt.Sprintf("p99 %.1f ms (max %.1f ms, %d rotations)", l.P99ms, l.Maxms, l.Rotations), l.P99ms < 250})
		}
	}
	return out
}

// encryptBody is an encrypt request of n random bytes.
func encryptBody(n int) []byte { return mustJSON(wire.EncryptRequest{Plaintext: randomBytes(n)}) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only wire types of fixed shape are encoded here
	}
	return b
}

// TempDir makes the directory of a run's children.
func TempDir() (string, error) {
	d, err := os.MkdirTemp("", "keyzone-bench-")
	if err != nil {
		return "", errors.New("bench: " + err.Error())
	}
	return d, nil
}
