package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"text/tabwriter"
	"time"
)

// Row is one measured load in a report.
type Row struct {
	// Name says what was sent, e.g. "encrypt 32 B".
	Name string `json:"name"`
	// Node is the node the load was sent to: "follower", "leader",
	// "floor" (a floor server) or "" when not a node of a zone.
	Node string `json:"node,omitempty"`
	Stats
	// Floor names the floor this row is compared with, measured in turns
	// with it (see RunPaired): FloorReqPerSec and FloorCPUus are the
	// floor's figures of those turns, ReqRatio and CPURatio this row's
	// over them.
	Floor          string  `json:"floor,omitempty"`
	FloorReqPerSec float64 `json:"floor_req_per_sec,omitempty"`
	FloorCPUus     float64 `json:"floor_cpu_us_per_req,omitempty"`
	FloorCPUNetus  float64 `json:"floor_cpu_net_us_per_req,omitempty"`
	FloorP50us     float64 `json:"floor_p50_us,omitempty"`
	FloorP99us     float64 `json:"floor_p99_us,omitempty"`
	ReqRatio       float64 `json:"req_ratio,omitempty"`
	CPURatio       float64 `json:"cpu_ratio,omitempty"`
	// CPUNetRatio is CPUNetus over the floor's (its idle CPU is nil, so
	// this compares what the requests cost).
	CPUNetRatio float64 `json:"cpu_net_ratio,omitempty"`
}

// Lag is the time from a rotation's acknowledgement in the primary zone
// until encryptions in the replica zones use the new version.
type Lag struct {
	Rotations int     `json:"rotations"`
	Zones     string  `json:"zones"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	Maxms     float64 `json:"max_ms"`
}

// Check is one target and whether the run met it.
type Check struct {
	Target string `json:"target"`
	Got    string `json:"got"`
	Met    bool   `json:"met"`
}

// Report is the result of `keyzone bench`, also written as JSON so that
// runs can be compared.
type Report struct {
	Started   time.Time `json:"started"`
	GoVersion string    `json:"go_version"`
	CPUs      int       `json:"cpus"`
	// Target is the deployment measured: "3 keyzone server processes" or
	// the address given.
	Target string `json:"target"`
	// IdleCPU is each server's CPU with no load, in milliseconds per
	// second, by role ("leader", "follower", "floor").
	IdleCPU map[string]float64 `json:"idle_cpu_ms_per_s,omitempty"`
	Rows    []Row              `json:"rows"`
	Lag     []Lag              `json:"lag,omitempty"`
	Checks  []Check            `json:"checks,omitempty"`
}

// NewReport starts an empty report of this machine.
func NewReport(target string) *Report {
	return &Report{Started: time.Now().UTC().Truncate(time.Second), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), Target: target}
}

// Row returns the row of that name and node, or nil.
func (r *Report) Row(name, node string) *Row {
	for i := range r.Rows {
		if r.Rows[i].Name == name && r.Rows[i].Node == node {
			return &r.Rows[i]
		}
	}
	return nil
}

// Add appends a row; floor, if not "", is the named floor's figures
// measured in turns with it.
func (r *Report) Add(row Row, floorName string, floor Stats) {
	if floorName != "" {
		row.Floor, row.FloorReqPerSec, row.FloorCPUus = floorName, floor.ReqPerSec, floor.CPUus
		row.FloorP50us, row.FloorP99us, row.FloorCPUNetus = floor.P50us, floor.P99us, floor.CPUNetus
		if floor.ReqPerSec > 0 {
			row.ReqRatio = row.ReqPerSec / floor.ReqPerSec
		}
		if floor.CPUus > 0 && row.CPUus > 0 {
			row.CPURatio = row.CPUus / floor.CPUus
		}
		if fn := cmp.Or(floor.CPUNetus, floor.CPUus); fn > 0 && row.CPUNetus > 0 {
			row.CPUNetRatio = row.CPUNetus / fn
		}
	}
	r.Rows = append(r.Rows, row)
}

// WriteTable prints the rows, the lag and the checks as aligned text.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "keyzone bench, %s, %s, %d CPUs; %s\n\n", r.Started.Format(time.RFC3339), r.GoVersion, r.CPUs, r.Target)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	if len(r.IdleCPU) > 0 {
		fmt.Fprintf(w, "idle CPU (no load): leader %.1f ms/s, follower %.1f ms/s, floor %.1f ms/s\n\n", r.IdleCPU["leader"], r.IdleCPU["follower"], r.IdleCPU["floor"])
	}
	fmt.Fprintln(tw, "load\tnode\tconns\treq/s\tp50\tp99\tmax\terrors\tcpu/req\tnet\tfloor req/s\tfloor cpu\tx floor req/s\tx floor cpu\tnet\t")
	for _, row := range r.Rows {
		ratio := func(x float64) string {
			if x == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", x)
		}
		cpu := "-"
		if row.CPUus > 0 {
			cpu = fmt.Sprintf("%.0fµs", row.CPUus)
		}
		node := row.Node
		if node == "" {
			node = "-"
		}
		floorReq, floorCPU := "-", "-"
		if row.Floor != "" {
			floorReq, floorCPU = fmt.Sprintf("%.0f", row.FloorReqPerSec), fmtUS(row.FloorCPUus)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			row.Name, node, row.Concurrency, row.ReqPerSec, fmtUS(row.P50us), fmtUS(row.P99us), fmtUS(row.Maxus),
			row.Errors, cpu, fmtUS(row.CPUNetus), floorReq, floorCPU, ratio(row.ReqRatio), ratio(row.CPURatio), ratio(row.CPUNetRatio))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nfloor req/s, floor cpu: the row's floor (no-op JSON, or echo JSON of the same size), measured in turns with it;")
	fmt.Fprintln(w, "x floor: the row's req/s and CPU per request over the floor's. cpu/req: the server process's user+system time")
	fmt.Fprintln(w, "over the window per request (for key creation and rotation: the three nodes'); net: less the idle CPU.")
	for _, row := range r.Rows {
		if row.FirstError != "" {
			fmt.Fprintf(w, "  %s (%s): %d errors, e.g. %s\n", row.Name, row.Node, row.Errors, row.FirstError)
		}
	}
	if len(r.Lag) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "rotation in force\tzones\trotations\tp50\tp99\tmax\t")
		for _, l := range r.Lag {
			fmt.Fprintf(tw, "ack -> new version encrypts\t%s\t%d\t%.1fms\t%.1fms\t%.1fms\t\n", l.Zones, l.Rotations, l.P50ms, l.P99ms, l.Maxms)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.Checks) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, c := range r.Checks {
			met := "MISSED"
			if c.Met {
				met = "met"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", met, c.Target, c.Got)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSON writes the report as indented JSON to path, creating its
// directory.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// fmtUS prints microseconds as µs below a millisecond, else as ms.
func fmtUS(us float64) string {
	switch {
	case us == 0:
		return "-"
	case us < 1000:
		return fmt.Sprintf("%.0fµs", us)
	default:
		return fmt.Sprintf("%.1fms", us/1000)
	}
}
