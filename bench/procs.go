package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
)

// Proc is a child process the bench started: a node, a floor server or a
// dev deployment. Its output goes to a log file beside its data.
type Proc struct {
	Name string
	// URL is its API's base URL (for a dev deployment, zone-a's first node).
	URL  string
	args []string
	env  []string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// PID is the process id, for /proc.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// LogFile is where the process writes its output.
func (p *Proc) LogFile() string { return p.log }

func (p *Proc) start(bin string) error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	p.cmd = exec.Command(bin, p.args...)
	p.cmd.Env = p.env
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.done = make(chan struct{})
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return nil
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop asks the process to stop (SIGTERM) and kills it if it has not
// within 20 seconds.
func (p *Proc) Stop() {
	if p.cmd == nil || p.cmd.Process == nil || p.Exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Kill ends the process at once (SIGKILL), as a crash would.
func (p *Proc) Kill() {
	if p.cmd == nil || p.cmd.Process == nil || p.Exited() {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
}

// tail returns the end of the process's log, for an error message.
func (p *Proc) tail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// childEnv is the environment of a child: this process's without any
// KEYZONE_ variable (a user's KEYZONE_ADDR must not reach a node's
// flags), plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYZONE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// freePorts returns n distinct ports free on 127.0.0.1 for both TCP and
// UDP (gossip needs both). It holds each port until all are chosen: a
// port closed at once could be handed out again for the next one, and
// two nodes of a zone would then be told to bind the same port. Another
// process may still take one before the child binds it; the child then
// fails to start and says so.
func freePorts(n int) ([]int, error) {
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries == 20*n {
			return nil, errors.New("bench: no free port")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, l)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		held = append(held, u)
		ports = append(ports, port)
	}
	return ports, nil
}

// NewToken returns a random API token.
func NewToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "kz_bench_" + hex.EncodeToString(b), nil
}

// ZoneOptions configures StartZone.
type ZoneOptions struct {
	// Binary is the keyzone executable.
	Binary string
	// Dir holds the nodes' data dirs and logs.
	Dir string
	// Nodes is the zone's size (0: 3).
	Nodes int
	// Token is the cluster operator's token.
	Token string
	// ExtraArgs are added to every node's `keyzone server` flags.
	ExtraArgs []string
}

// Zone is a zone of `keyzone server` processes, one per node, on
// loopback, with fsync on as in production.
type Zone struct {
	Nodes []*Proc
	Token string
	bin   string
}

// StartZone starts the nodes of one zone and returns at once; WaitReady
// waits for them to form it.
func StartZone(o ZoneOptions) (*Zone, error) {
	if o.Nodes <= 0 {
		o.Nodes = 3
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	rootKey := base64.StdEncoding.EncodeToString(raw)
	clear(raw)
	z := &Zone{Token: o.Token, bin: o.Binary}
	all, err := freePorts(3 * o.Nodes)
	if err != nil {
		return nil, err
	}
	var join string
	for i := range o.Nodes {
		ports := all[3*i : 3*i+3]
		id := fmt.Sprintf("n%d", i+1)
		addr := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
		args := []string{"server",
			"--node-id", id, "--zone", "zone-a",
			"--data-dir", filepath.Join(o.Dir, id),
			"--api-addr", addr(ports[0]), "--raft-addr", addr(ports[1]), "--gossip-addr", addr(ports[2]),
			"--gossip-profile", "local", "--bootstrap-expect", strconv.Itoa(o.Nodes),
			"--log-level", "warn",
			// Every request is audited, as in production, to a file.
			"--audit-log", filepath.Join(o.Dir, id+".audit.log"),
		}
		if join != "" {
			args = append(args, "--join", join)
		} else {
			join = addr(ports[2])
		}
		args = append(args, o.ExtraArgs...)
		p := &Proc{
			Name: id,
			URL:  "http://" + addr(ports[0]),
			args: args,
			// Secrets go through the environment, never the command line
			// (which any user can read in /proc).
			env: childEnv("KEYZONE_ROOT_KEY="+rootKey, "KEYZONE_OPERATOR_TOKEN="+o.Token),
			log: filepath.Join(o.Dir, id+".log"),
		}
		if err := p.start(o.Binary); err != nil {
			z.Stop()
			return nil, err
		}
		z.Nodes = append(z.Nodes, p)
	}
	return z, nil
}

// Organization creates the organization the benchmarks use, through the
// node at url: no rate limit and the largest key quota, so that neither
// caps a measure. It returns an org-admin token of it once every node
// authenticates it.
func (z *Zone) Organization(ctx context.Context, url string) (string, error) {
	op, err := client.New(url, z.Token, client.WithTimeout(30*time.Second))
	if err != nil {
		return "", err
	}
	org, err := op.CreateOrganization(ctx, wire.CreateOrganizationRequest{
		Name: "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36), KeyQuota: 100_000_000, RateLimit: -1,
	})
	if err != nil {
		return "", fmt.Errorf("create the benchmark organization: %w", err)
	}
	tok, err := op.CreateToken(ctx, org.ID, wire.CreateTokenRequest{Role: "org-admin", Description: "keyzone bench"})
	if err != nil {
		return "", fmt.Errorf("create the benchmark token: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range z.Nodes {
		c, err := client.New(p.URL, tok.Secret, client.WithTimeout(2*time.Second))
		if err != nil {
			return "", err
		}
		for {
			if _, err = c.WhoAmI(ctx); err == nil {
				break
			}
			if time.Now().After(deadline) {
				return "", fmt.Errorf("the benchmark token does not work on %s: %w", p.Name, err)
			}
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return tok.Secret, nil
}

// Restart starts a stopped node again on its data dir and ports.
func (z *Zone) Restart(p *Proc) error { return p.start(z.bin) }

// Stop stops every node.
func (z *Zone) Stop() {
	for _, p := range z.Nodes {
		p.Stop()
	}
}

// PIDs returns every node's process id.
func (z *Zone) PIDs() []int {
	var pids []int
	for _, p := range z.Nodes {
		pids = append(pids, p.PID())
	}
	return pids
}

// WaitReady waits until every node is ready and they agree on a leader
// that sees every node, and returns that leader.
func (z *Zone) WaitReady(ctx context.Context, timeout time.Duration) (*Proc, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		leader, err := z.leader(ctx)
		if err == nil {
			return leader, nil
		}
		last = err
		for _, p := range z.Nodes {
			if p.Exited() {
				return nil, fmt.Errorf("node %s exited: %v\n%s", p.Name, p.err, p.tail())
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("zone not ready within %s: %w", timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (z *Zone) leader(ctx context.Context) (*Proc, error) {
	var leaderID string
	for _, p := range z.Nodes {
		c, err := client.New(p.URL, z.Token, client.WithTimeout(2*time.Second))
		if err != nil {
			return nil, err
		}
		h, err := c.Health(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		if !h.Ready {
			return nil, fmt.Errorf("%s not ready: %s", p.Name, h.Reason)
		}
		st, err := c.ClusterStatus(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		if st.Leader == "" || len(st.Nodes) != len(z.Nodes) || (leaderID != "" && st.Leader != leaderID) {
			return nil, fmt.Errorf("%s sees leader %q and %d nodes", p.Name, st.Leader, len(st.Nodes))
		}
		leaderID = st.Leader
	}
	for _, p := range z.Nodes {
		if p.Name == leaderID {
			return p, nil
		}
	}
	return nil, fmt.Errorf("leader %q is no node of the zone", leaderID)
}

// StartFloor starts `keyzone bench floor-server` and returns once it
// listens.
func StartFloor(ctx context.Context, bin, dir, token string) (*Proc, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	p := &Proc{
		Name: "floor",
		URL:  "http://" + addr,
		args: []string{"bench", "floor-server", "--addr", addr},
		env:  childEnv("KEYZONE_ROOT_TOKEN=" + token),
		log:  filepath.Join(dir, "floor.log"),
	}
	if err := p.start(bin); err != nil {
		return nil, err
	}
	if err := waitListening(ctx, p, addr, 30*time.Second); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// StartDev starts `keyzone dev --zones n` and returns once it has
// written its env file, which StartDev returns the path of.
func StartDev(ctx context.Context, bin, dir string, zones int) (*Proc, string, error) {
	env := filepath.Join(dir, "dev.env")
	p := &Proc{
		Name: "dev",
		args: []string{"dev", "--zones", strconv.Itoa(zones), "--api-port", "0", "--env-file", env, "--data-dir", filepath.Join(dir, "dev")},
		env:  childEnv(),
		log:  filepath.Join(dir, "dev.log"),
	}
	if err := p.start(bin); err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		if _, err := os.Stat(env); err == nil {
			return p, env, nil
		}
		if p.Exited() {
			return nil, "", fmt.Errorf("keyzone dev exited: %v\n%s", p.err, p.tail())
		}
		select {
		case <-ctx.Done():
			p.Stop()
			return nil, "", fmt.Errorf("keyzone dev did not write %s: %w", env, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitListening waits until addr accepts connections.
func waitListening(ctx context.Context, p *Proc, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("%s exited: %v\n%s", p.Name, p.err, p.tail())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not listening on %s: %w", p.Name, addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ReadEnvFile reads KEY=value lines.
func ReadEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseEnv(f)
}

func parseEnv(r io.Reader) (map[string]string, error) {
	env := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env, sc.Err()
}
