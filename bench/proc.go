package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of the CPU times in /proc/<pid>/stat: USER_HZ,
// which Linux fixes at 100 for user space whatever the kernel's HZ.
const clockTick = 10 * time.Millisecond

// cpuTime returns the summed user and system CPU time of the processes.
func cpuTime(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				if _, serr := os.Stat("/proc/self/stat"); serr != nil {
					return 0, errNoProc
				}
			}
			return 0, fmt.Errorf("bench: cpu time of process %d: %w", pid, err)
		}
		d, err := ParseStatCPU(b)
		if err != nil {
			return 0, fmt.Errorf("bench: cpu time of process %d: %w", pid, err)
		}
		total += d
	}
	return total, nil
}

// ParseStatCPU returns utime + stime of a /proc/<pid>/stat line. The
// command name (field 2) is in parentheses and may itself hold spaces and
// parentheses, so fields are counted from the last ')'.
func ParseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed stat: no command name")
	}
	// After ") " come field 3 (state), 4, ...; utime and stime are
	// fields 14 and 15.
	f := strings.Fields(string(stat[i+1:]))
	const utime = 14 - 3
	if len(f) <= utime+1 {
		return 0, fmt.Errorf("malformed stat: %d fields after the command name", len(f))
	}
	u, err := strconv.ParseUint(f[utime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("malformed stat: utime %q", f[utime])
	}
	s, err := strconv.ParseUint(f[utime+1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("malformed stat: stime %q", f[utime+1])
	}
	return time.Duration(u+s) * clockTick, nil
}

// RSS returns the resident set size of a process, from VmRSS in
// /proc/<pid>/status.
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("bench: rss of process %d: %w", pid, err)
	}
	return ParseStatusRSS(b)
}

// ParseStatusRSS returns the VmRSS of a /proc/<pid>/status text, in bytes.
func ParseStatusRSS(status []byte) (int64, error) {
	for line := range strings.SplitSeq(string(status), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("malformed VmRSS line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed VmRSS line %q", line)
		}
		return kb << 10, nil
	}
	return 0, errors.New("no VmRSS line")
}

// IdleCPU measures what the processes burn with no load over d, in CPU
// seconds per second: a zone's nodes send Raft heartbeats, gossip and run
// tickers whether or not anyone calls them.
func IdleCPU(ctx context.Context, pids []int, d time.Duration) (float64, error) {
	before, err := cpuTime(pids)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(d):
	}
	after, err := cpuTime(pids)
	if err != nil {
		return 0, err
	}
	return float64(after-before) / float64(time.Since(start)), nil
}
